"""Training jobs, metric series, logs and checkpoints, plus the kit's outbox and inbox."""

import sqlalchemy as sa
from alembic import op
from forge_kit.messaging_tables import create_messaging_tables, drop_messaging_tables
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.Text),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("base_model_uri", sa.Text, nullable=False),
        sa.Column("base_model_version_id", sa.Text),
        sa.Column("dataset_version_id", sa.Text, nullable=False),
        sa.Column("dataset_bucket", sa.Text, nullable=False),
        sa.Column("train_key", sa.Text, nullable=False),
        sa.Column("validation_key", sa.Text),
        sa.Column("data_format", sa.Text, nullable=False),
        sa.Column("hyperparameters", JSONB, nullable=False),
        sa.Column("lora", JSONB, nullable=False),
        sa.Column("resources", JSONB, nullable=False),
        sa.Column("allocation_request_id", sa.Text, nullable=False),
        sa.Column("queue", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("total_steps", sa.BigInteger),
        sa.Column("eta_s", sa.Float),
        sa.Column("latest_metrics", JSONB, nullable=False),
        sa.Column("last_checkpoint_step", sa.BigInteger),
        sa.Column("last_checkpoint_uri", sa.Text),
        sa.Column("model_uri", sa.Text),
        sa.Column("adapter_uri", sa.Text),
        sa.Column("resumed_from_step", sa.BigInteger),
        sa.Column("error", sa.Text),
        sa.Column("exit_code", sa.Integer),
        sa.Column("cancel_requested_by", sa.Text),
        sa.Column("cancel_reason", sa.Text),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("started_at", _TS),
        sa.Column("finished_at", _TS),
    )
    op.create_index("training_jobs_tenant", "training_jobs", ["tenant", "id"])
    op.create_table(
        "training_metrics",
        sa.Column("job_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("step", sa.BigInteger, primary_key=True),
        sa.Column("value", sa.Float),
    )
    op.create_table(
        "training_logs",
        sa.Column("job_id", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("logged_at", _TS, nullable=False),
    )
    op.create_table(
        "training_checkpoints",
        sa.Column("job_id", sa.Text, primary_key=True),
        sa.Column("step", sa.BigInteger, primary_key=True),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("uploaded_at", _TS, nullable=False),
    )
    create_messaging_tables(op)


def downgrade() -> None:
    drop_messaging_tables(op)
    op.drop_table("training_checkpoints")
    op.drop_table("training_logs")
    op.drop_table("training_metrics")
    op.drop_table("training_jobs")
