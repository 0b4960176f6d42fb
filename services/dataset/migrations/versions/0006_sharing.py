"""Sharing datasets with other tenants (DS-5): grants, and the clearance platform admins give tenants."""

import sqlalchemy as sa
from alembic import op

revision = "0006_sharing"
down_revision = "0005_file_formats"


def upgrade() -> None:
    op.create_table(
        "dataset_grants",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False, index=True),
        sa.Column("dataset_id", sa.Text, sa.ForeignKey("datasets.id"), nullable=False, index=True),
        sa.Column("grantee_tenant", sa.Text, nullable=False, index=True),
        sa.Column("version_id", sa.Text, sa.ForeignKey("dataset_versions.id")),
        sa.Column("access", sa.Text, nullable=False),
        sa.Column("granted_by", sa.Text),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.Text),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revoke_reason", sa.Text),
        sa.CheckConstraint("access IN ('read', 'read+derive')", name="dataset_grants_access"),
    )
    # One active grant per dataset, grantee and scope (the whole dataset, or one version).
    op.create_index(
        "dataset_grants_active",
        "dataset_grants",
        ["dataset_id", "grantee_tenant", sa.text("coalesce(version_id, '')")],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    op.create_table(
        "tenant_clearances",
        sa.Column("tenant", sa.Text, primary_key=True),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("set_by", sa.Text),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("level IN ('public', 'internal', 'confidential')", name="tenant_clearances_level"),
    )


def downgrade() -> None:
    op.drop_table("tenant_clearances")
    op.drop_index("dataset_grants_active", table_name="dataset_grants")
    op.drop_table("dataset_grants")
