"""`forge up` / `forge down` for the services: each built service runs as its own process on its port,
migrates its own database, answers /readyz, and is gone after down."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
from forge_cli.services import Platform
from forge_cli.stack import Stack, _alive
from forge_kit.stack_env import StackSettings, load_stack_settings


def test_up_starts_each_service_process_ready_on_its_port_and_down_stops_it(
    stack: Stack, stack_settings: StackSettings
) -> None:
    platform = Platform(stack, only=["registry"])
    assert [s.name for s in platform.services] == ["registry"]
    try:
        platform.up()
        (registry,) = platform.services
        ready = httpx.get(f"{registry.endpoints()['http']}/readyz", timeout=5)
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "kafka": "ok", "temporal": "ok"}
        env = load_stack_settings(stack.env_file)
        assert env.service_dsn("registry").endswith("/forge_registry")
        assert f"FORGE_REGISTRY_URL=http://127.0.0.1:{registry.port}" in stack.env_file.read_text()
        pid = registry.pid()
        platform.up()  # idempotent: the healthy process is kept
        assert registry.pid() == pid
    finally:
        for service in platform.services:
            service.stop()
    assert pid is not None and not _alive(pid, registry.process_marker)


async def test_a_service_started_by_up_migrated_its_own_database(
    stack: Stack, stack_settings: StackSettings
) -> None:
    platform = Platform(stack, only=["registry"])
    try:
        await asyncio.to_thread(platform.up)  # the CLI's code is synchronous
    finally:
        for service in platform.services:
            service.stop()
    conn = await asyncpg.connect(stack_settings.service_dsn("registry"))
    try:
        assert await conn.fetchval("SELECT version_num FROM alembic_version") is not None
        assert await conn.fetchval("SELECT to_regclass('outbox')::text") == "outbox"
    finally:
        await conn.close()


def test_up_refuses_a_port_already_taken_by_another_process(stack: Stack) -> None:
    import socket

    import pytest
    from forge_cli.stack import StackError

    platform = Platform(stack, only=["registry"])
    (registry,) = platform.services
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", registry.port))
    squatter.listen()
    try:
        with pytest.raises(StackError, match="already in use by another process"):
            platform.up()
    finally:
        squatter.close()
        registry.stop()
