"""What each file of a version is: its record format (jsonl, csv, parquet; none for a blob) and media type."""

import sqlalchemy as sa
from alembic import op

revision = "0005_file_formats"
down_revision = "0004"


def upgrade() -> None:
    op.add_column("dataset_version_files", sa.Column("format", sa.String(), nullable=True))
    op.add_column(
        "dataset_version_files",
        sa.Column("media_type", sa.String(), nullable=False, server_default="application/octet-stream"),
    )
    # Every file before this revision was a JSONL record file.
    op.execute("UPDATE dataset_version_files SET format = 'jsonl', media_type = 'application/x-ndjson'")


def downgrade() -> None:
    op.drop_column("dataset_version_files", "media_type")
    op.drop_column("dataset_version_files", "format")
