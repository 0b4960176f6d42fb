"""Allocations run registered workloads, never argv: `command` becomes `workload` (a kind and its
parameters); a request key remembers the digest of the request it was first used with."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.alter_column("allocations", "command", new_column_name="workload")
    # An argv recorded before is never run: the allocation keeps its quota claim, without a workload.
    op.execute("UPDATE allocations SET workload = NULL WHERE workload ? 'argv'")
    op.add_column("allocations", sa.Column("request_digest", sa.Text))


def downgrade() -> None:
    op.drop_column("allocations", "request_digest")
    op.execute("UPDATE allocations SET workload = NULL")
    op.alter_column("allocations", "workload", new_column_name="command")
