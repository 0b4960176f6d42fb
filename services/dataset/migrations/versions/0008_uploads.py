"""Resumable uploads: a multipart upload of one file of a draft version, its parts sent in any order
and resent at will, completed (checked, added to the version) or aborted."""

import sqlalchemy as sa
from alembic import op

revision = "0008_uploads"
down_revision = "0007_connections"

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dataset_uploads",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("tenant", sa.String(), nullable=False, index=True),
        sa.Column("dataset_id", sa.String(), nullable=False),
        sa.Column("version_id", sa.String(), nullable=False, index=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("object_key", sa.String(), nullable=False),
        sa.Column("s3_upload_id", sa.String(), nullable=False),
        sa.Column("part_bytes", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger()),
        sa.Column("sha256", sa.String()),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("created_by", sa.String()),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("ended_at", _TS),
    )


def downgrade() -> None:
    op.drop_table("dataset_uploads")
