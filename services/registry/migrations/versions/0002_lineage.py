"""The lineage graph across services (DP-4) and the outbox of its OpenLineage run events."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "lineage_nodes",
        sa.Column("kind", sa.String(), primary_key=True),
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("tenant_id", sa.String(), index=True),
        sa.Column("name", sa.String()),
        sa.Column("attributes", JSONB(), nullable=False, server_default="{}"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "lineage_edges",
        sa.Column("source_kind", sa.String(), primary_key=True),
        sa.Column("source_id", sa.String(), primary_key=True),
        sa.Column("target_kind", sa.String(), primary_key=True),
        sa.Column("target_id", sa.String(), primary_key=True),
        sa.Column("relation", sa.String(), primary_key=True),
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("lineage_edges_by_target", "lineage_edges", ["tenant_id", "target_kind", "target_id"])
    op.create_index("lineage_edges_by_source", "lineage_edges", ["tenant_id", "source_kind", "source_id"])
    op.create_table(
        "openlineage_outbox",
        sa.Column("seq", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("payload", JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "openlineage_outbox_unsent",
        "openlineage_outbox",
        ["seq"],
        postgresql_where=sa.text("sent_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("openlineage_outbox")
    op.drop_table("lineage_edges")
    op.drop_table("lineage_nodes")
