"""embed grants: one-time login codes, tickets and iframe tokens for embedding in CRMs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
import desk.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('embed_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', desk.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', desk.models.UTCDateTime(), nullable=False),
    sa.Column('used_at', desk.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('secret_hash')
    )
    with op.batch_alter_table('embed_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_embed_grants_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_embed_grants_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('embed_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_embed_grants_user_id'))
        batch_op.drop_index(batch_op.f('ix_embed_grants_expires_at'))
    op.drop_table('embed_grants')
