"""PostgreSQL: a real server, SQLModel on asyncpg, and one database + role per service."""

from __future__ import annotations

import asyncpg
import pytest
from forge_kit.stack_env import SERVICES, StackSettings
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession


class Widget(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str
    size_bytes: int


async def test_sqlmodel_round_trip_through_asyncpg(database: str) -> None:
    engine = create_async_engine(database.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)
        async with AsyncSession(engine) as session:
            session.add(Widget(name="gear", size_bytes=42))
            await session.commit()
        async with AsyncSession(engine) as session:
            found = (await session.exec(select(Widget).where(Widget.name == "gear"))).one()
        assert found.size_bytes == 42
        assert found.id is not None
    finally:
        await engine.dispose()


async def test_every_service_has_its_own_database_and_role(stack_settings: StackSettings) -> None:
    for service in SERVICES:
        conn = await asyncpg.connect(stack_settings.service_dsn(service))
        try:
            assert await conn.fetchval("SELECT current_database()") == f"forge_{service}"
            assert await conn.fetchval("SELECT current_user") == f"forge_{service}"
        finally:
            await conn.close()


async def test_a_service_role_cannot_connect_to_another_services_database(
    stack_settings: StackSettings,
) -> None:
    dataset_dsn = stack_settings.service_dsn("dataset")
    intruding = dataset_dsn.rsplit("/", 1)[0] + "/forge_training"
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await asyncpg.connect(intruding)
