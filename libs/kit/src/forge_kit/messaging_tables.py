"""DDL of the kit's own tables, created by each service's first Alembic migration.

- `outbox`: events written in the same transaction as the domain change, as Kafka records (topic, key,
  headers, value); `sent_at` is set once the broker acknowledged the record.
- `inbox`: one row per (consumer, event id) handled, written in the same transaction as the effect.
"""

from __future__ import annotations

from typing import Any

OUTBOX_CHANNEL = "forge_outbox"

UPGRADE = [
    """
    CREATE TABLE outbox (
        id bigserial PRIMARY KEY,
        event_id text NOT NULL UNIQUE,
        event_type text NOT NULL,
        topic text NOT NULL,
        key text NOT NULL,
        headers jsonb NOT NULL,
        value bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        sent_at timestamptz
    )
    """,
    "CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL",
    f"""
    CREATE FUNCTION forge_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('{OUTBOX_CHANNEL}', '');
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION forge_outbox_notify()
    """,
    """
    CREATE TABLE inbox (
        consumer text NOT NULL,
        event_id text NOT NULL,
        event_type text NOT NULL,
        subject text NOT NULL,
        sequence bigint NOT NULL,
        handled_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, event_id)
    )
    """,
]

DOWNGRADE = [
    "DROP TABLE inbox",
    "DROP TRIGGER outbox_notify ON outbox",
    "DROP FUNCTION forge_outbox_notify()",
    "DROP TABLE outbox",
]


def create_messaging_tables(op: Any) -> None:
    """Call from a service's first migration's `upgrade()` with Alembic's `op`."""
    for statement in UPGRADE:
        op.execute(statement)


def drop_messaging_tables(op: Any) -> None:
    """Call from that migration's `downgrade()`."""
    for statement in DOWNGRADE:
        op.execute(statement)
