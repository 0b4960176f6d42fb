"""`forge login`: the password grant for scripts and the device flow for people, against the stack's
Keycloak; the session is kept readable by its owner only, and a refused sign-in exits non-zero."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import jwt
from forge_cli.stack import Stack
from forge_kit.stack_env import read_env_file
from forge_sdk import auth


def _forge(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forge_cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_login_with_a_password_keeps_a_session_only_its_owner_can_read(stack: Stack, tmp_path: Path) -> None:
    written = read_env_file(stack.env_file)
    credentials = tmp_path / "credentials.json"
    env = {
        **os.environ,
        "FORGE_CREDENTIALS": str(credentials),
        "FORGE_PASSWORD": written["FORGE_DEMO_PASSWORD"],
    }

    result = _forge("login", "--username", "demo", env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "signed in as demo" in result.stdout
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    saved = json.loads(credentials.read_text())
    claims = jwt.decode(saved["access_token"], options={"verify_signature": False})
    assert claims["preferred_username"] == "demo" and "forge" in claims["aud"]
    renewed = auth.refresh(auth.load(credentials) or auth.Tokens(**saved))
    assert renewed.access_token != saved["access_token"]


def test_a_wrong_password_is_refused_with_exit_code_1(stack: Stack, tmp_path: Path) -> None:
    env = {**os.environ, "FORGE_CREDENTIALS": str(tmp_path / "c.json"), "FORGE_PASSWORD": "not-the-password"}

    result = _forge("login", "--username", "demo", env=env)

    assert result.returncode == 1
    assert "sign-in failed" in result.stdout
    assert not (tmp_path / "c.json").exists()


def test_the_device_flow_tells_the_user_where_to_confirm(stack: Stack) -> None:
    issuer = read_env_file(stack.env_file)["FORGE_OIDC_ISSUER"]
    shown: list[tuple[str, str, int]] = []

    try:
        auth.device_login(issuer, lambda url, code, expires: shown.append((url, code, expires)), timeout_s=1)
    except auth.LoginError as error:
        assert "not confirmed" in str(error)
    [(url, code, expires)] = shown
    assert url.startswith(issuer) and code in url and expires > 60
