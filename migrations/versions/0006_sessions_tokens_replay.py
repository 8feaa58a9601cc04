"""session revocation, API token revocation, callback token replay cache

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:35:00
"""

from alembic import op
import sqlalchemy as sa
import desk.models


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('session_version', sa.Integer(), server_default='0',
                                   nullable=False))
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('revoked_at', desk.models.UTCDateTime(), nullable=True))
    op.create_table('used_tokens',
    sa.Column('jti', sa.String(length=255), nullable=False),
    sa.Column('expires_at', desk.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('jti')
    )
    op.create_index(op.f('ix_used_tokens_expires_at'), 'used_tokens', ['expires_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_used_tokens_expires_at'), table_name='used_tokens')
    op.drop_table('used_tokens')
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_column('revoked_at')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_version')
