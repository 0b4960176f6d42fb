"""Datasets, their versions and files, dataset tasks, plus the kit's outbox and inbox."""

import sqlalchemy as sa
from alembic import op
from forge_kit.messaging_tables import create_messaging_tables, drop_messaging_tables
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False, index=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("modality", sa.Text, nullable=False),
        sa.Column("secrecy", sa.Text, nullable=False),
        sa.Column("licence", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("schema_hint", JSONB),
        sa.Column("version_count", sa.Integer, nullable=False),
        sa.Column("created_by", sa.Text),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("tenant", "name"),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False, index=True),
        sa.Column("dataset_id", sa.Text, sa.ForeignKey("datasets.id"), nullable=False, index=True),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("parent_version_id", sa.Text, sa.ForeignKey("dataset_versions.id")),
        sa.Column("operation", sa.Text),
        sa.Column("parameters", JSONB, nullable=False),
        sa.Column("request_key", sa.Text),
        sa.Column("manifest_sha256", sa.Text),
        sa.Column("manifest_key", sa.Text),
        sa.Column("item_count", sa.BigInteger, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("splits", JSONB, nullable=False),
        sa.Column("errors", JSONB, nullable=False),
        sa.Column("created_by", sa.Text),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("published_at", _TS),
        sa.UniqueConstraint("dataset_id", "number"),
        sa.UniqueConstraint("tenant", "request_key"),
    )
    op.create_table(
        "dataset_version_files",
        sa.Column("version_id", sa.Text, sa.ForeignKey("dataset_versions.id"), primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("object_key", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("record_count", sa.BigInteger, nullable=False),
        sa.Column("uploaded_at", _TS, nullable=False),
    )
    op.create_table(
        "dataset_tasks",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False, index=True),
        sa.Column("dataset_id", sa.Text, sa.ForeignKey("datasets.id"), nullable=False, index=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("input_version_id", sa.Text),
        sa.Column("output_version_id", sa.Text),
        sa.Column("parameters", JSONB, nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("stats", JSONB, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_by", sa.Text),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    create_messaging_tables(op)


def downgrade() -> None:
    drop_messaging_tables(op)
    op.drop_table("dataset_tasks")
    op.drop_table("dataset_version_files")
    op.drop_table("dataset_versions")
    op.drop_table("datasets")
