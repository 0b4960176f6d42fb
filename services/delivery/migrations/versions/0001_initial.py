"""Delivery orders plus the kit's outbox and inbox."""

import sqlalchemy as sa
from alembic import op
from forge_kit.messaging_tables import create_messaging_tables, drop_messaging_tables
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "delivery_order",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("idempotency_key", sa.Text),
        sa.Column("created_by", sa.Text),
        sa.Column("model_version_id", sa.Text, nullable=False),
        sa.Column("model_id", sa.Text, nullable=False),
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("deployment_id", sa.Text),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column("source_uri", sa.Text, nullable=False),
        sa.Column("bundle_uri", sa.Text, nullable=False),
        sa.Column("card", JSONB, nullable=False),
        sa.Column("inference", JSONB, nullable=False),
        sa.Column("mirror", sa.Boolean, nullable=False),
        sa.Column("shared_path", sa.Text),
        sa.Column("files", JSONB, nullable=False),
        sa.Column("written_keys", JSONB, nullable=False),
        sa.Column("progress_stage", sa.Text),
        sa.Column("files_done", sa.Integer, nullable=False),
        sa.Column("files_total", sa.Integer, nullable=False),
        sa.Column("bytes_done", sa.BigInteger, nullable=False),
        sa.Column("bytes_total", sa.BigInteger, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("failed_stage", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_delivery_order_tenant_id", "delivery_order", ["tenant_id"])
    op.create_index("ix_delivery_order_model_version_id", "delivery_order", ["model_version_id"])
    # One live order per bundle location; failed and cancelled ones leave room for a new attempt.
    op.create_index(
        "uq_delivery_order_live_bundle",
        "delivery_order",
        ["tenant_id", "model_name", "model_version"],
        unique=True,
        postgresql_where=sa.text("state NOT IN ('failed', 'cancelled')"),
    )
    op.create_index(
        "uq_delivery_order_idempotency_key",
        "delivery_order",
        ["tenant_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    create_messaging_tables(op)


def downgrade() -> None:
    drop_messaging_tables(op)
    op.drop_table("delivery_order")
