"""Dataset aliases (`latest` and users' names, DS-2) and the dataset's own event sequence for them."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column("datasets", sa.Column("sequence", sa.BigInteger, nullable=False, server_default="0"))
    op.create_table(
        "dataset_aliases",
        sa.Column("dataset_id", sa.Text, sa.ForeignKey("datasets.id"), primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False, index=True),
        sa.Column("version_id", sa.Text, sa.ForeignKey("dataset_versions.id"), nullable=False),
        sa.Column("moved_by", sa.Text),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dataset_aliases")
    op.drop_column("datasets", "sequence")
