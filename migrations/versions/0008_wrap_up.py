"""after-call work: dispositions, a call's disposition and note, timed wrap-up presence

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 05:40:00
"""

from alembic import op
import sqlalchemy as sa
import desk.models


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dispositions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=80), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', desk.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('label')
    )
    with op.batch_alter_table('calls') as batch:
        batch.add_column(sa.Column('disposition', sa.String(length=80), nullable=True))
        batch.add_column(sa.Column('wrap_up_note', sa.Text(), nullable=True))
        batch.add_column(sa.Column('wrapped_up_at', desk.models.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column('wrapped_up_by_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_calls_wrapped_up_by_id_users', 'users',
                                 ['wrapped_up_by_id'], ['id'], ondelete='SET NULL')
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('presence_until', desk.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('presence_until')
    with op.batch_alter_table('calls') as batch:
        batch.drop_constraint('fk_calls_wrapped_up_by_id_users', type_='foreignkey')
        batch.drop_column('wrapped_up_by_id')
        batch.drop_column('wrapped_up_at')
        batch.drop_column('wrap_up_note')
        batch.drop_column('disposition')
    op.drop_table('dispositions')
