"""Evaluation jobs and the records (prompt, reference, prediction) they kept."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "evaluation_jobs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("request_key", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.Text),
        sa.Column("model_uri", sa.Text, nullable=False),
        sa.Column("model_version_id", sa.Text),
        sa.Column("training_job_id", sa.Text),
        sa.Column("dataset_version_id", sa.Text),
        sa.Column("test_bucket", sa.Text, nullable=False),
        sa.Column("test_key", sa.Text, nullable=False),
        sa.Column("data_format", sa.Text, nullable=False),
        sa.Column("max_new_tokens", sa.Integer, nullable=False),
        sa.Column("max_records", sa.Integer),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("phase", sa.Text),
        sa.Column("metrics", JSONB, nullable=False),
        sa.Column("record_count", sa.Integer),
        sa.Column("records_uri", sa.Text),
        sa.Column("report_uri", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("exit_code", sa.Integer),
        sa.Column("cancel_requested_by", sa.Text),
        sa.Column("cancel_reason", sa.Text),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("started_at", _TS),
        sa.Column("finished_at", _TS),
        sa.UniqueConstraint("tenant", "request_key", name="evaluation_jobs_request_key"),
    )
    op.create_index("evaluation_jobs_tenant", "evaluation_jobs", ["tenant", "id"])
    op.create_table(
        "evaluation_records",
        sa.Column("evaluation_id", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("prediction", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("evaluation_records")
    op.drop_table("evaluation_jobs")
