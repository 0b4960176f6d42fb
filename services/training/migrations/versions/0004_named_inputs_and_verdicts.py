"""Inputs named by Forge id (the dataset, the hub's base model, the test file's name) and an evaluation's
own verdict against the thresholds it was given."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("training_jobs", sa.Column("dataset_id", sa.Text))
    op.add_column("training_jobs", sa.Column("base_model_id", sa.Text))
    op.add_column("evaluation_jobs", sa.Column("dataset_id", sa.Text))
    op.add_column("evaluation_jobs", sa.Column("test_file", sa.Text))
    op.add_column("evaluation_jobs", sa.Column("base_model_id", sa.Text))
    op.add_column("evaluation_jobs", sa.Column("thresholds", JSONB))
    op.add_column("evaluation_jobs", sa.Column("passed", sa.Boolean))
    op.add_column(
        "evaluation_jobs",
        sa.Column("failed_checks", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    )


def downgrade() -> None:
    for column in ("failed_checks", "passed", "thresholds", "base_model_id", "test_file", "dataset_id"):
        op.drop_column("evaluation_jobs", column)
    op.drop_column("training_jobs", "base_model_id")
    op.drop_column("training_jobs", "dataset_id")
