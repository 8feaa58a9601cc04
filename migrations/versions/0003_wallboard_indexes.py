"""wallboard and history indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 09:00:00.000000

"Answered today" and the average handle time read today's range of ``answered_at``; the
other wallboard counters use the existing ``started_at`` / ``ended_at`` / ``state`` indexes.
"""

from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_answered_at', ['answered_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_answered_at')
