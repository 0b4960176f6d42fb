"""Registry tables (model projects, base models, versions, evaluations, audit) plus the outbox and inbox."""

import sqlalchemy as sa
from alembic import op
from forge_kit.messaging_tables import create_messaging_tables, drop_messaging_tables
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None


def _created() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def _json(name: str) -> sa.Column:
    return sa.Column(name, JSONB, nullable=False)


def upgrade() -> None:
    op.create_table(
        "model_project",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("desc", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("train_framework", sa.Text, nullable=False),
        sa.Column("inference_framework", sa.Text, nullable=False),
        sa.Column("metrics_url", sa.Text, nullable=False),
        _json("gate"),
        _created(),
        sa.UniqueConstraint("tenant", "name", name="model_project_name_unique"),
    )
    op.create_table(
        "base_model",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("architecture", sa.Text, nullable=False),
        sa.Column("parameter_count", sa.BigInteger, nullable=False),
        sa.Column("intended_use", sa.Text, nullable=False),
        sa.Column("licence", sa.Text, nullable=False),
        sa.Column("framework", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        _created(),
        sa.UniqueConstraint("tenant", "name", "version", name="base_model_name_version_unique"),
    )
    op.create_table(
        "model_version",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("project_id", sa.Text, sa.ForeignKey("model_project.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("artifact_uri", sa.Text, nullable=False),
        sa.Column("framework", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("training_job_id", sa.Text),
        sa.Column("base_model_id", sa.Text, sa.ForeignKey("base_model.id")),
        _json("dataset_versions"),
        _json("hyperparameters"),
        _json("metrics"),
        _json("tags"),
        sa.Column("evaluation_id", sa.Text),
        sa.Column("evaluation_passed", sa.Boolean),
        sa.Column("delivery_order_id", sa.Text),
        sa.Column("bundle_uri", sa.Text),
        _created(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("project_id", "version", name="model_version_number_unique"),
    )
    op.create_index(
        "model_version_training_job_unique",
        "model_version",
        ["tenant", "training_job_id"],
        unique=True,
        postgresql_where=sa.text("training_job_id IS NOT NULL"),
    )
    op.create_index("model_version_tags", "model_version", ["tags"], postgresql_using="gin")
    op.create_table(
        "evaluation",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("version_id", sa.Text, sa.ForeignKey("model_version.id"), nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        _json("metrics"),
        _json("thresholds"),
        _json("failed_checks"),
        _json("checks"),
        _json("report"),
        sa.Column("report_uri", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "version_audit",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("version_id", sa.Text, sa.ForeignKey("model_version.id"), nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("from_state", sa.Text),
        sa.Column("to_state", sa.Text, nullable=False),
        sa.Column("actor", sa.Text),
        sa.Column("approved_by", sa.Text),
        sa.Column("reason", sa.Text),
        _json("details"),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("model_project_tenant", "model_project", ["tenant"])
    op.create_index("base_model_tenant", "base_model", ["tenant"])
    op.create_index("model_version_tenant_project", "model_version", ["tenant", "project_id"])
    op.create_index("evaluation_version", "evaluation", ["version_id"])
    op.create_index("version_audit_version", "version_audit", ["version_id", "at"])
    create_messaging_tables(op)


def downgrade() -> None:
    drop_messaging_tables(op)
    for table in ("version_audit", "evaluation", "model_version", "base_model", "model_project"):
        op.drop_table(table)
