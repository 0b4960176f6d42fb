"""Tenants, projects with quotas, allocations; plus the kit's outbox and inbox."""

import sqlalchemy as sa
from alembic import op
from forge_kit.messaging_tables import create_messaging_tables, drop_messaging_tables
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("queue", sa.Text, nullable=False),
        sa.Column("quota_cpu_millis", sa.BigInteger, nullable=False),
        sa.Column("quota_memory_bytes", sa.BigInteger, nullable=False),
        sa.Column("quota_accelerators", JSONB, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("quota_updated_at", TS),
        sa.UniqueConstraint("tenant_id", "name", name="projects_tenant_name"),
    )
    op.create_table(
        "allocations",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False, index=True),
        sa.Column("project_id", sa.Text, sa.ForeignKey("projects.id"), nullable=False, index=True),
        sa.Column("request_key", sa.Text),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("gang_size", sa.Integer, nullable=False),
        sa.Column("cpu_millis", sa.BigInteger, nullable=False),
        sa.Column("memory_bytes", sa.BigInteger, nullable=False),
        sa.Column("accelerators", JSONB, nullable=False),
        sa.Column("workload_kind", sa.Text, nullable=False),
        sa.Column("workload_id", sa.Text, nullable=False),
        sa.Column("queue", sa.Text, nullable=False),
        sa.Column("actor", sa.Text),
        sa.Column("command", JSONB),
        sa.Column("rejection_code", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("backend", sa.Text),
        sa.Column("backend_ref", sa.Text),
        sa.Column("log_dir", sa.Text),
        sa.Column("exit_code", sa.Integer),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("admitted_at", TS),
        sa.Column("started_at", TS),
        sa.Column("ended_at", TS),
        sa.UniqueConstraint("tenant_id", "request_key", name="allocations_request_key"),
    )
    op.create_index("allocations_project_state", "allocations", ["project_id", "state"])
    create_messaging_tables(op)


def downgrade() -> None:
    drop_messaging_tables(op)
    op.drop_table("allocations")
    op.drop_table("projects")
    op.drop_table("tenants")
