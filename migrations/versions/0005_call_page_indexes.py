"""Indexes for a call's page: its deliveries and audit entries, found by call id.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_call_id", "deliveries", ["call_id"])
    op.create_index("ix_audit_log_call_id", "audit_log", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_call_id", table_name="audit_log")
    op.drop_index("ix_deliveries_call_id", table_name="deliveries")
