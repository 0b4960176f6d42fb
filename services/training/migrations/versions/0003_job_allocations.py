"""A job's scheduler project and the scheduler allocation it ran on."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("training_jobs", sa.Column("scheduler_project_id", sa.Text))
    op.add_column("training_jobs", sa.Column("allocation_id", sa.Text))


def downgrade() -> None:
    op.drop_column("training_jobs", "allocation_id")
    op.drop_column("training_jobs", "scheduler_project_id")
