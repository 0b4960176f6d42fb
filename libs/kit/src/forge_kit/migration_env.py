"""The body of every service's Alembic `env.py`: async engine, one advisory lock, online mode.

A service's `migrations/env.py` is just:

    from forge_kit.migration_env import run_migrations
    from forge_<name>.tables import metadata
    run_migrations(metadata)
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

MIGRATION_LOCK_ID = 7_301_955  # any constant; one lock per database


def _run(connection: Connection, metadata: MetaData | None) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    try:
        context.configure(connection=connection, target_metadata=metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()


async def _run_async(metadata: MetaData | None) -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set")
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run, metadata)
    finally:
        await engine.dispose()


def run_migrations(metadata: MetaData | None) -> None:
    """Run the pending migrations (online mode only: Forge always migrates a live database)."""
    if context.is_offline_mode():
        raise RuntimeError("offline migrations are not supported; run them against the database")
    asyncio.run(_run_async(metadata))
