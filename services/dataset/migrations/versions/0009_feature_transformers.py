"""Feature transformers (DP-3): scikit-learn steps fitted on one version, applied to others."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009_feature_transformers"
down_revision = "0008_uploads"


def upgrade() -> None:
    op.create_table(
        "feature_transformers",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("tenant", sa.String(), nullable=False, index=True),
        sa.Column("dataset_id", sa.String(), nullable=False, index=True),
        sa.Column("fitted_on_version_id", sa.String(), nullable=False),
        sa.Column("task_id", sa.String(), nullable=False, unique=True),
        sa.Column("spec", JSONB(), nullable=False),
        sa.Column("object_key", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=False),
        sa.Column("summary", JSONB(), nullable=False),
        sa.Column("created_by", sa.String()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feature_transformers")
