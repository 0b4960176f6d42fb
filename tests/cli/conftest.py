"""The user commands against the whole platform as `forge up` runs it (the six services as processes behind
the gateway), as users run them: `forge login` into a credentials file of the test's own, then `forge ...`
as a process. The demo tenant holds the demo user (tenant admin, ML engineer, release approver) and a
viewer; the demo's dataset version, base model, model project and scheduler project are made through the
APIs, as `forge demo` makes them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from forge_cli.demo import DemoSetup, build_inputs, set_up
from forge_cli.services import Platform
from forge_cli.stack import Stack
from forge_kit.stack_env import StackSettings, read_env_file

from tests.harness import PLATFORM_ONLY, VIEWER, demo_tenant, forge_up_platform


def forge(*args: str, env: dict[str, str], timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    """`forge <args>` as a process, as the user whose session `env` names."""
    return subprocess.run(
        [sys.executable, "-m", "forge_cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**env, "COLUMNS": "200"},
        check=False,
    )


@dataclass
class Users:
    """The demo tenant's entities, and the environments of its users' `forge` sessions."""

    setup: DemoSetup
    demo: dict[str, str]
    """The demo user: tenant admin, ML engineer and release approver."""
    viewer: dict[str, str]


@pytest.fixture(scope="module")
def platform(stack: Stack) -> Iterator[Platform]:
    with forge_up_platform(stack) as running:
        yield running


def _login(username: str, env: dict[str, str], credentials: Path) -> dict[str, str]:
    session = {
        **{k: v for k, v in os.environ.items() if k not in PLATFORM_ONLY},
        "FORGE_CREDENTIALS": str(credentials),
        "FORGE_PASSWORD": env["FORGE_DEMO_PASSWORD"],
        "FORGE_TENANT": "demo",
    }
    signed = forge("login", "--username", username, env=session)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    return session


@pytest.fixture(scope="module")
async def users(
    platform: Platform, stack: Stack, stack_settings: StackSettings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Users]:
    """The demo user and a viewer signed in by `forge login`, and the demo's published dataset version (its
    train, validation and test splits), tiny base model, model project and scheduler project."""
    env = read_env_file(stack.env_file)
    gateway = env["FORGE_GATEWAY_URL"]
    http = {
        name: httpx.AsyncClient(base_url=f"{gateway}/api/{name}", timeout=120)
        for name in ("dataset", "registry", "scheduler")
    }
    try:
        demo, admin = await demo_tenant(env, http["scheduler"])
        inputs = build_inputs(tmp_path_factory.mktemp("cli-inputs"))
        setup = await set_up(http, stack_settings, inputs, caller=demo, admin=admin)
    finally:
        for client in http.values():
            await client.aclose()
    sessions = tmp_path_factory.mktemp("cli-sessions")
    yield Users(
        setup,
        _login("demo", env, sessions / "demo.json"),
        _login(VIEWER, env, sessions / "viewer.json"),
    )
