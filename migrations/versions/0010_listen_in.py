"""supervisor listen-in rules and a call's recording as ordered segments

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 07:30:00
"""

from alembic import op
import sqlalchemy as sa
import desk.models


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('listen_ins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supervisor_id', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('number', sa.String(length=64), nullable=True),
    sa.Column('address', sa.String(length=255), nullable=False),
    sa.Column('created_at', desk.models.UTCDateTime(), nullable=False),
    sa.CheckConstraint('(agent_id IS NULL) <> (number IS NULL)', name='ck_listen_ins_one_target'),
    sa.ForeignKeyConstraint(['agent_id'], ['users.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['supervisor_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('supervisor_id', 'agent_id', name='uq_listen_ins_supervisor_agent'),
    sa.UniqueConstraint('supervisor_id', 'number', name='uq_listen_ins_supervisor_number'),
    sqlite_autoincrement=True
    )
    op.create_index('ix_listen_ins_agent_id', 'listen_ins', ['agent_id'], unique=False)
    op.create_index('ix_listen_ins_supervisor_id', 'listen_ins', ['supervisor_id'], unique=False)
    op.create_table('recording_segments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('file_name', sa.String(length=1000), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('started_at', desk.models.UTCDateTime(), nullable=True),
    sa.Column('started_by_id', sa.Integer(), nullable=True),
    sa.Column('stopped_at', desk.models.UTCDateTime(), nullable=True),
    sa.Column('stopped_by_id', sa.Integer(), nullable=True),
    sa.Column('stop_reason', sa.String(length=16), nullable=True),
    sa.Column('file_size', sa.BigInteger(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['started_by_id'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['stopped_by_id'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('call_id', 'position', name='uq_recording_segments_call_position')
    )


def downgrade() -> None:
    op.drop_table('recording_segments')
    op.drop_index('ix_listen_ins_supervisor_id', table_name='listen_ins')
    op.drop_index('ix_listen_ins_agent_id', table_name='listen_ins')
    op.drop_table('listen_ins')
