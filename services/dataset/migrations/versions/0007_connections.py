"""Connections users register for imports (object stores, SQL databases), with their secrets sealed."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007_connections"
down_revision = "0006_sharing"


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("options", JSONB, nullable=False, server_default="{}"),
        sa.Column("sealed_secret", sa.LargeBinary, nullable=False),
        sa.Column("created_by", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("tenant", "name", name="connections_tenant_name"),
    )
    op.create_index("ix_connections_tenant", "connections", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_connections_tenant", "connections")
    op.drop_table("connections")
