"""Toy aggregate tables plus the kit's outbox and inbox."""

import sqlalchemy as sa
from alembic import op
from forge_kit.messaging_tables import create_messaging_tables, drop_messaging_tables

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "toy_counters",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "toy_effects",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("counter_id", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("trace_id", sa.Text),
    )
    create_messaging_tables(op)


def downgrade() -> None:
    drop_messaging_tables(op)
    op.drop_table("toy_effects")
    op.drop_table("toy_counters")
