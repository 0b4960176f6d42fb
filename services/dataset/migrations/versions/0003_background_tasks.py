"""Dataset tasks run in the background (a Temporal workflow each): when they started, their progress in
units and ETA, a result document, a request key (identical requests share one task) and who asked to
cancel; and per-file statistics collected while a file is scanned."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("dataset_tasks", sa.Column("started_at", _TS))
    op.add_column("dataset_tasks", sa.Column("eta_s", sa.Float))
    op.add_column("dataset_tasks", sa.Column("attempt", sa.Integer, nullable=False, server_default="0"))
    op.add_column("dataset_tasks", sa.Column("progress_detail", JSONB, nullable=False, server_default="{}"))
    op.add_column("dataset_tasks", sa.Column("result", JSONB, nullable=False, server_default="{}"))
    op.add_column("dataset_tasks", sa.Column("request_key", sa.Text))
    op.add_column("dataset_tasks", sa.Column("cancel_requested_by", sa.Text))
    op.add_column("dataset_tasks", sa.Column("cancel_reason", sa.Text))
    op.create_unique_constraint("dataset_tasks_request_key", "dataset_tasks", ["tenant", "request_key"])
    op.add_column("dataset_version_files", sa.Column("stats", JSONB))


def downgrade() -> None:
    op.drop_column("dataset_version_files", "stats")
    op.drop_constraint("dataset_tasks_request_key", "dataset_tasks")
    for name in (
        "cancel_reason",
        "cancel_requested_by",
        "request_key",
        "result",
        "progress_detail",
        "attempt",
        "eta_s",
        "started_at",
    ):
        op.drop_column("dataset_tasks", name)
