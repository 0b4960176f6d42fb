"""Signed-in callers for tests: real users in the stack's Keycloak, real tokens, real memberships.

    ACME = as_user("alice", tenant="acme")      # request headers: a fresh bearer token + x-forge-tenant
    await http.get("/projects", headers=ACME)

Users are created in the `forge` realm through Keycloak's admin API the first time a test names them
(the seeded LDAP users — ada, demo, … — already exist there through federation), with the stack's demo
password, and sign in by the password grant of the `forge-cli` client. Tokens are cached until shortly
before they expire. Tenants and roles live in the directory (a scheduler) like everywhere else: see
`Directory` below and the session fixture in tests/conftest.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from forge_kit.stack_env import env_file_path, read_env_file
from forge_sdk.auth import BearerHeaders


@dataclass
class Identity:
    """The stack's identity provider, as tests use it."""

    env: Mapping[str, str]
    _tokens: dict[str, tuple[float, str]] = field(default_factory=dict)
    _known: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def issuer(self) -> str:
        return self.env["FORGE_OIDC_ISSUER"]

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    @property
    def password(self) -> str:
        return self.env["FORGE_DEMO_PASSWORD"]

    def _admin_token(self) -> str:
        url = f"{self.env['FORGE_KEYCLOAK_URL']}/realms/master/protocol/openid-connect/token"
        response = httpx.post(
            url,
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": self.env.get("FORGE_KEYCLOAK_ADMIN_USER", "admin"),
                "password": self.env["FORGE_KEYCLOAK_ADMIN_PASSWORD"],
            },
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def ensure_user(self, username: str) -> None:
        """Create `username` in the realm unless it can already sign in."""
        if username in self._known:
            return
        if self._password_grant(username, check=False) is None:
            admin = {"authorization": f"Bearer {self._admin_token()}"}
            response = httpx.post(
                f"{self.env['FORGE_KEYCLOAK_URL']}/admin/realms/forge/users",
                headers=admin,
                json={
                    "username": username,
                    "enabled": True,
                    "email": f"{username}@test.forge.local",
                    "emailVerified": True,
                    "firstName": username.capitalize(),
                    "lastName": "Test",
                    "credentials": [{"type": "password", "value": self.password, "temporary": False}],
                },
                timeout=30,
            )
            assert response.status_code in (201, 409), response.text
        self._known.add(username)

    def _password_grant(self, username: str, *, check: bool = True) -> dict[str, Any] | None:
        response = httpx.post(
            self.token_url,
            data={
                "grant_type": "password",
                "client_id": self.env.get("FORGE_CLI_CLIENT_ID", "forge-cli"),
                "username": username,
                "password": self.password,
                "scope": "openid",
            },
            timeout=30,
        )
        if response.status_code != 200:
            assert not check, f"{username} cannot sign in: {response.status_code} {response.text}"
            return None
        body: dict[str, Any] = response.json()
        return body

    def token(self, username: str) -> str:
        """A valid access token of `username` (created in the realm if needed)."""
        with self._lock:
            cached = self._tokens.get(username)
            if cached is not None and time.monotonic() < cached[0]:
                return cached[1]
            self.ensure_user(username)
            body = self._password_grant(username)
            assert body is not None
            token = str(body["access_token"])
            self._tokens[username] = (time.monotonic() + float(body["expires_in"]) - 60, token)
            return token

    def service_token(self, service: str) -> str:
        """An access token of Forge's service `service` (client credentials)."""
        key = f"service:{service}"
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and time.monotonic() < cached[0]:
                return cached[1]
            response = httpx.post(
                self.token_url,
                data={"grant_type": "client_credentials"},
                auth=(f"forge-{service}", self.env[f"FORGE_{service.upper()}_CLIENT_SECRET"]),
                timeout=30,
            )
            response.raise_for_status()
            body = response.json()
            self._tokens[key] = (time.monotonic() + float(body["expires_in"]) - 60, body["access_token"])
            return str(body["access_token"])


_identity: Identity | None = None


def identity() -> Identity:
    """The stack's identity provider, from the env file `forge stack up` wrote."""
    global _identity
    if _identity is None:
        _identity = Identity(read_env_file(env_file_path()))
    return _identity


class Caller(BearerHeaders):
    """Request headers of a signed-in caller: `authorization` is a fresh token each time it is read."""

    def __init__(
        self,
        username: str,
        tenant: str | None = None,
        *,
        service: str | None = None,
        on_behalf_of: str | None = None,
    ) -> None:
        self.username = username
        self.tenant = tenant
        self.service = service
        self.on_behalf_of = on_behalf_of

    def token(self) -> str:
        return identity().service_token(self.service) if self.service else identity().token(self.username)

    def extra_headers(self) -> dict[str, str]:
        return {} if self.on_behalf_of is None else {"x-forge-on-behalf-of": self.on_behalf_of}

    def __or__(self, other: Mapping[str, str]) -> dict[str, str]:  # type: ignore[override]
        return {**self._headers(), **other}

    def in_tenant(self, tenant: str | None) -> Caller:
        return Caller(self.username, tenant, service=self.service, on_behalf_of=self.on_behalf_of)

    def __repr__(self) -> str:
        return f"Caller({self.service or self.username!r}, tenant={self.tenant!r})"


def as_user(username: str, tenant: str | None = None) -> Caller:
    """Headers of `username` signed in, acting in `tenant`."""
    return Caller(username, tenant)


def as_service(service: str, tenant: str | None = None, *, on_behalf_of: str | None = None) -> Caller:
    """Headers of Forge's service `service` (its client-credentials identity), acting in `tenant`, for
    the user `on_behalf_of` when given."""
    return Caller(f"service-account-forge-{service}", tenant, service=service, on_behalf_of=on_behalf_of)


def grant(directory_url: str, tenant: str, username: str, roles: list[str], *, admin: str = "ada") -> None:
    """Make `username` a member of `tenant` with `roles` (creating the tenant if needed), as a platform
    admin, through the directory's API."""
    headers = dict(as_user(admin))
    created = httpx.post(f"{directory_url}/tenants", json={"id": tenant}, headers=headers, timeout=30)
    assert created.status_code in (201, 409), created.text
    identity().ensure_user(username)
    response = httpx.put(
        f"{directory_url}/tenants/{tenant}/members/{username}",
        json={"roles": roles},
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text
