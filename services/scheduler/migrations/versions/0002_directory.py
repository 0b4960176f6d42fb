"""The directory: tenants get a display name and creator; memberships (user, role, tenant or project)."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("tenants", sa.Column("display_name", sa.Text))
    op.add_column("tenants", sa.Column("created_by", sa.Text))
    op.create_table(
        "memberships",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("username", sa.Text, nullable=False, index=True),
        sa.Column("project_id", sa.Text, sa.ForeignKey("projects.id")),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("granted_by", sa.Text, nullable=False),
        sa.Column("granted_at", TS, nullable=False),
        sa.UniqueConstraint(
            "tenant_id",
            "username",
            "project_id",
            "role",
            name="memberships_unique",
            postgresql_nulls_not_distinct=True,
        ),
    )


def downgrade() -> None:
    op.drop_table("memberships")
    op.drop_column("tenants", "created_by")
    op.drop_column("tenants", "display_name")
