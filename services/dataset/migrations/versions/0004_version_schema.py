"""A published version's inferred record schema (fields, their types, which every record has)."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("dataset_versions", sa.Column("record_schema", JSONB))


def downgrade() -> None:
    op.drop_column("dataset_versions", "record_schema")
