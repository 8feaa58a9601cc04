"""the durable live change sequence

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 05:20:00
"""

from alembic import op
import sqlalchemy as sa
import desk.models


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('live_changes',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
              nullable=False),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.Column('committed_at', desk.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sqlite_autoincrement=True,
    )
    op.create_index(op.f('ix_live_changes_committed_at'), 'live_changes', ['committed_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_live_changes_committed_at'), table_name='live_changes')
    op.drop_table('live_changes')
