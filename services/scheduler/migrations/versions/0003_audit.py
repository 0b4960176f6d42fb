"""The audit trail's store."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("actor_kind", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("resource_type", sa.Text, nullable=False),
        sa.Column("resource_id", sa.Text, nullable=False),
        sa.Column("project_id", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("request_id", sa.Text),
        sa.Column("trace_id", sa.Text),
        sa.Column("details", JSONB, nullable=False),
    )
    op.create_index("audit_entries_tenant_time", "audit_entries", ["tenant_id", sa.text("occurred_at DESC")])
    op.create_index("audit_entries_actor", "audit_entries", ["tenant_id", "actor"])
    op.create_index("audit_entries_resource", "audit_entries", ["tenant_id", "resource_id"])
    op.create_index("audit_entries_time", "audit_entries", ["occurred_at"])


def downgrade() -> None:
    op.drop_table("audit_entries")
