"""Label templates, labeling projects, tasks, annotations and exports, plus the kit's outbox and inbox."""

import sqlalchemy as sa
from alembic import op
from forge_kit.messaging_tables import create_messaging_tables, drop_messaging_tables
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "labeling_templates",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False, index=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("labels", JSONB, nullable=False),
        sa.Column("text_field", sa.Text, nullable=False),
        sa.Column("instructions", sa.Text),
        sa.Column("created_by", sa.Text),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("tenant", "name"),
    )
    op.create_table(
        "labeling_projects",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False, index=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("template_id", sa.Text, sa.ForeignKey("labeling_templates.id"), nullable=False),
        sa.Column("dataset_id", sa.Text, nullable=False),
        sa.Column("dataset_version_id", sa.Text, nullable=False),
        sa.Column("dataset_version_number", sa.Integer, nullable=False),
        sa.Column("task_count", sa.Integer, nullable=False),
        sa.Column("created_by", sa.Text),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("tenant", "name"),
    )
    op.create_table(
        "labeling_tasks",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False, index=True),
        sa.Column("project_id", sa.Text, sa.ForeignKey("labeling_projects.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("item_id", sa.Text, nullable=False),
        sa.Column("record", JSONB, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("assignee", sa.Text),
        sa.Column("annotation_id", sa.Text),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("project_id", "position"),
    )
    op.create_index("labeling_tasks_project_state", "labeling_tasks", ["project_id", "state"])
    op.create_table(
        "labeling_annotations",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False, index=True),
        sa.Column("task_id", sa.Text, sa.ForeignKey("labeling_tasks.id"), nullable=False, index=True),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("annotator", sa.Text, nullable=False),
        sa.Column("lead_time_s", sa.Float),
        sa.Column("review", sa.Text),
        sa.Column("reviewer", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("submitted_at", _TS, nullable=False),
        sa.Column("reviewed_at", _TS),
    )
    op.create_table(
        "labeling_exports",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False, index=True),
        sa.Column("project_id", sa.Text, sa.ForeignKey("labeling_projects.id"), nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column("label_field", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("record_count", sa.Integer, nullable=False),
        sa.Column("bucket", sa.Text),
        sa.Column("object_key", sa.Text),
        sa.Column("dataset_version_id", sa.Text),
        sa.Column("dataset_version_number", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("created_by", sa.Text),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("finished_at", _TS),
        sa.UniqueConstraint("tenant", "project_id", "request_id"),
    )
    create_messaging_tables(op)


def downgrade() -> None:
    drop_messaging_tables(op)
    op.drop_table("labeling_exports")
    op.drop_table("labeling_annotations")
    op.drop_index("labeling_tasks_project_state", table_name="labeling_tasks")
    op.drop_table("labeling_tasks")
    op.drop_table("labeling_projects")
    op.drop_table("labeling_templates")
