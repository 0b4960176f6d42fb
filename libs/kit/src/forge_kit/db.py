"""The service's own database: SQLModel sessions on asyncpg, and Alembic migrations run at start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import BigInteger
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Field
from sqlmodel.ext.asyncio.session import AsyncSession


def bigint(default: Any = ...) -> Any:
    """A SQLModel field for a BIGINT column (bytes, record and parameter counts past 2**31). A plain `int`
    field is typed INTEGER, and the asyncpg dialect binds every value with that cast (`$1::INTEGER`), so
    3 GiB or 7e9 parameters fail in inserts and lookups even though the column is BIGINT."""
    return Field(default=default, sa_type=BigInteger)


def sqlalchemy_url(dsn: str) -> str:
    """`postgresql://...` (as in the env file) -> the asyncpg dialect URL SQLAlchemy wants."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+asyncpg://" + dsn[len(prefix) :]
    raise ValueError(f"not a PostgreSQL DSN: {dsn.split('@')[-1]}")


def asyncpg_dsn(dsn: str) -> str:
    """The plain `postgresql://` DSN asyncpg wants."""
    return "postgresql://" + sqlalchemy_url(dsn).removeprefix("postgresql+asyncpg://")


class Database:
    """A connection pool to one service database. Connections are checked before use, so the
    service recovers by itself after PostgreSQL restarts."""

    def __init__(self, dsn: str, *, pool_size: int = 10) -> None:
        self.dsn = asyncpg_dsn(dsn)
        self.engine: AsyncEngine = create_async_engine(
            sqlalchemy_url(dsn), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )
        self._sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on any exception."""
        async with self._sessions() as session, session.begin():
            yield session

    def session(self) -> AsyncSession:
        """A plain session (for reads)."""
        return self._sessions()

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self.engine.dispose()


def alembic_config(migrations_dir: Path, dsn: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(dsn).replace("%", "%%"))
    return config


async def migrate(dsn: str, migrations_dir: Path) -> None:
    """Bring the database to the newest migration (`alembic upgrade head`).

    Runs in a worker thread (Alembic is synchronous); the migration env (forge_kit.migration_env)
    holds an advisory lock, so several instances starting together migrate once.
    """
    await asyncio.to_thread(command.upgrade, alembic_config(migrations_dir, dsn), "head")
