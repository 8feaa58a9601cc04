"""where each user's calls ring (desk phone or the browser softphone) and their stored SIP password

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09 09:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('phone', sa.String(length=16), server_default='desk',
                                   nullable=False))
        batch.add_column(sa.Column('sip_password_encrypted', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('sip_password_encrypted')
        batch.drop_column('phone')
