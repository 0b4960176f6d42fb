"""Signing in (the SDK's and the `forge` command's): the OIDC device flow (or the password grant, for
scripts and the local demo) against Forge's issuer, tokens kept in `~/.config/forge/credentials.json`
(mode 600) and refreshed when they near expiry.

    tokens = device_login(issuer, "forge-cli", show=print)       # `forge login`
    headers = SignedIn(tokens, tenant="acme")                     # request headers, token kept fresh
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

CLI_CLIENT_ID = "forge-cli"


class LoginError(RuntimeError):
    """The issuer refused the sign-in (wrong password, expired device code, unknown client)."""


@dataclass
class Tokens:
    """An access token (and the refresh token that renews it) from one issuer."""

    issuer: str
    client_id: str
    access_token: str
    expires_at: float  # epoch seconds
    refresh_token: str | None = None
    username: str | None = None

    @classmethod
    def of(cls, issuer: str, client_id: str, body: Mapping[str, Any], username: str | None = None) -> Tokens:
        return cls(
            issuer=issuer,
            client_id=client_id,
            access_token=str(body["access_token"]),
            expires_at=time.time() + float(body.get("expires_in", 300)),
            refresh_token=body.get("refresh_token"),
            username=username,
        )


def _token_url(issuer: str) -> str:
    return f"{issuer.rstrip('/')}/protocol/openid-connect/token"


def _grant(issuer: str, data: Mapping[str, str]) -> dict[str, Any]:
    response = httpx.post(_token_url(issuer), data=dict(data), timeout=30)
    if response.status_code != 200:
        try:
            reason = response.json().get("error_description") or response.json().get("error")
        except ValueError:
            reason = response.text[:200]
        raise LoginError(f"the identity provider refused the sign-in: {reason}")
    body: dict[str, Any] = response.json()
    return body


def password_login(issuer: str, username: str, password: str, client_id: str = CLI_CLIENT_ID) -> Tokens:
    """Sign in with a username and password (the password grant of the CLI client)."""
    body = _grant(
        issuer,
        {
            "grant_type": "password",
            "client_id": client_id,
            "username": username,
            "password": password,
            "scope": "openid",
        },
    )
    return Tokens.of(issuer, client_id, body, username)


def device_login(
    issuer: str,
    show: Callable[[str, str, int], None],
    client_id: str = CLI_CLIENT_ID,
    *,
    timeout_s: float = 600,
) -> Tokens:
    """The OAuth 2.0 device flow: `show(verification_url, user_code, expires_in_s)` tells the user where to
    confirm in a browser; then the issuer is polled until they have."""
    response = httpx.post(
        f"{issuer.rstrip('/')}/protocol/openid-connect/auth/device",
        data={"client_id": client_id, "scope": "openid"},
        timeout=30,
    )
    if response.status_code != 200:
        raise LoginError(f"the identity provider refused the device flow: {response.text[:200]}")
    started = response.json()
    show(
        str(started.get("verification_uri_complete") or started["verification_uri"]),
        str(started["user_code"]),
        int(started.get("expires_in", 600)),
    )
    interval = float(started.get("interval", 5))
    deadline = time.monotonic() + min(timeout_s, float(started.get("expires_in", 600)))
    while time.monotonic() < deadline:
        time.sleep(interval)
        polled = httpx.post(
            _token_url(issuer),
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "client_id": client_id,
                "device_code": started["device_code"],
            },
            timeout=30,
        )
        if polled.status_code == 200:
            return Tokens.of(issuer, client_id, polled.json())
        error = polled.json().get("error")
        if error == "slow_down":
            interval += 5
        elif error != "authorization_pending":
            raise LoginError(f"the device sign-in ended: {error}")
    raise LoginError("the device sign-in was not confirmed in time")


def refresh(tokens: Tokens) -> Tokens:
    """New tokens from the refresh token (LoginError when it has expired: sign in again)."""
    if not tokens.refresh_token:
        raise LoginError("the session cannot be renewed: sign in again (`forge login`)")
    body = _grant(
        tokens.issuer,
        {"grant_type": "refresh_token", "client_id": tokens.client_id, "refresh_token": tokens.refresh_token},
    )
    return Tokens.of(tokens.issuer, tokens.client_id, body, tokens.username)


def credentials_path() -> Path:
    """Where `forge login` keeps the session: $FORGE_CREDENTIALS, else ~/.config/forge/credentials.json."""
    explicit = os.environ.get("FORGE_CREDENTIALS")
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return Path(explicit) if explicit else base / "forge" / "credentials.json"


def save(tokens: Tokens, path: Path | None = None) -> Path:
    """Keep the session for later commands (readable by this user only)."""
    target = path or credentials_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.touch(mode=0o600, exist_ok=True)
    target.chmod(0o600)
    target.write_text(json.dumps(asdict(tokens)))
    return target


def load(path: Path | None = None) -> Tokens | None:
    """The saved session, if any."""
    source = path or credentials_path()
    if not source.exists():
        return None
    return Tokens(**json.loads(source.read_text()))


class BearerHeaders(Mapping[str, str]):
    """Request headers of a caller, read afresh each time: a bearer token (`token()`, renewed by the
    subclass as it needs), the tenant header when one is chosen, and `extra_headers()`."""

    tenant: str | None

    def token(self) -> str:
        raise NotImplementedError

    def extra_headers(self) -> dict[str, str]:
        return {}

    def _headers(self) -> dict[str, str]:
        headers = {"authorization": f"Bearer {self.token()}"}
        if self.tenant is not None:
            headers["x-forge-tenant"] = self.tenant
        headers.update(self.extra_headers())
        return headers

    def __getitem__(self, key: str) -> str:
        return self._headers()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers())

    def __len__(self) -> int:
        return len(self._headers())


class SignedIn(BearerHeaders):
    """Request headers of a signed-in user (bearer token renewed before it expires, and the tenant
    header when one is chosen)."""

    def __init__(
        self, tokens: Tokens, tenant: str | None = None, *, renew: Callable[[Tokens], Tokens] = refresh
    ) -> None:
        self.tokens = tokens
        self.tenant = tenant
        self._renew = renew
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if time.time() > self.tokens.expires_at - 60:
                self.tokens = self._renew(self.tokens)
            return self.tokens.access_token

    def in_tenant(self, tenant: str | None) -> SignedIn:
        """The same session acting in another tenant."""
        return SignedIn(self.tokens, tenant, renew=self._renew)
