"""The API gateway (Envoy) in front of a real Forge service, with real tokens from the stack's Keycloak.

The stack's own gateway is checked where no service is needed (it runs, is named in the env file,
refuses what it must). The rest runs against a second gateway of this module's, built by the same code
with a small body limit and a short key cache, in front of the tests' directory (a real scheduler
process): tokens from Keycloak's password grant, tokens signed by a key this module adds to the realm
(expired, for another audience: rejected for that reason; and key rotation: accepted once the gateway
refetched the realm's keys, without a restart), request ids, CORS, limits and unknown paths.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from forge_cli.gateway import CORS_HEADERS, Gateway, GatewayLimits, envoy_bin, envoy_config
from forge_cli.stack import Stack
from forge_kit.stack_env import SERVICES, load_stack_settings, read_env_file

from tests.harness import free_port
from tests.identity import identity

BODY_LIMIT = 64 * 1024
KEY_CACHE_S = 10
CONSOLE = "http://localhost:5173"


def _wait_until(condition: Callable[[], object], *, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s}s")
        time.sleep(0.2)


def _start(gateway: Gateway) -> Gateway:
    gateway.prepare()
    gateway.launch()

    def ready() -> bool:
        assert gateway.running(), f"{gateway.name} exited; log:\n{gateway.log_path.read_text()[-3000:]}"
        return gateway.healthy()

    _wait_until(ready, timeout_s=60, what=f"{gateway.name} healthy")
    return gateway


@pytest.fixture(scope="module")
def env(stack: Stack) -> dict[str, str]:
    return read_env_file(stack.env_file)


@pytest.fixture(scope="module")
def scheduler_port(directory: str) -> int:
    """The port of a real scheduler process (the tests' directory, tests/conftest.py)."""
    port = urlsplit(directory).port
    assert port is not None
    return port


@pytest.fixture(scope="module")
def gateway(stack: Stack, scheduler_port: int) -> Iterator[Gateway]:
    """A gateway of this module's in front of the scheduler: 64 KiB bodies, keys refetched every 5 s."""
    limits = GatewayLimits(max_body_bytes=BODY_LIMIT, jwks_cache_s=KEY_CACHE_S, rps=10_000)
    gateway = Gateway(
        stack,
        name=f"gateway-test-{uuid.uuid4().hex[:6]}",
        port=free_port(),
        admin_port=free_port(),
        upstreams={"scheduler": scheduler_port},
        limits=limits,
    )
    try:
        yield _start(gateway)
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def token() -> str:
    """A real access token of the seeded user `demo` (Keycloak's password grant, client forge-cli)."""
    return identity().token("demo")


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _forwarded(response: httpx.Response) -> bool:
    """Whether the gateway passed the request on to the service (Envoy times the upstream's answer)."""
    return "x-envoy-upstream-service-time" in response.headers


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


# --- the configuration ---------------------------------------------------------------------------------


def test_the_rendered_configuration_is_one_envoy_accepts(tmp_path: Path) -> None:
    config = envoy_config(
        port=1,
        admin_port=2,
        keycloak_port=3,
        upstreams={service: 10 + i for i, service in enumerate(SERVICES)},
        limits=GatewayLimits(rps=7, max_body_bytes=100, cors_origins=("https://console.example",)),
    )
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [envoy_bin(), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the stack's own gateway -------------------------------------------------------------------------


def test_the_stack_runs_the_gateway_and_names_it_in_the_env_file(stack: Stack) -> None:
    (status,) = [s for s in stack.status() if s.name == "gateway"]
    assert status.state == "running", status.log_tail
    assert [s.name for s in stack.servers][-1] == "gateway"
    url = f"http://127.0.0.1:{stack.ports.gateway}"
    assert load_stack_settings(stack.env_file).gateway_url == url
    assert f"FORGE_GATEWAY_URL={url}" in stack.env_file.read_text()
    gateway = stack.servers[-1]
    assert isinstance(gateway, Gateway) and gateway.jwks_fetches() > 0  # Keycloak's keys are loaded

    no_token = httpx.get(f"{url}/api/registry/model-projects", timeout=10)
    _problem(no_token, 401)
    assert no_token.headers["www-authenticate"].startswith("Bearer")
    _problem(httpx.get(f"{url}/nowhere", timeout=10), 404)


def test_the_stack_gateway_refuses_a_body_over_2_gib_before_reading_any_of_it(
    stack: Stack, token: str
) -> None:
    """Only the headers are sent: a 3 GiB Content-Length is answered at once, nothing is buffered."""
    head = (
        f"PUT /api/dataset/datasets/d/versions/v/files/f.jsonl HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"authorization: Bearer {token}\r\ncontent-length: {3 * 2**30}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", stack.ports.gateway), timeout=10) as sock:
        sock.sendall(head.encode())
        reply = sock.recv(65536).decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413"), reply
    assert "application/problem+json" in reply


# --- tokens ------------------------------------------------------------------------------------------


def test_a_request_without_a_token_is_401_and_never_reaches_the_service(http: httpx.Client) -> None:
    response = http.get("/api/scheduler/me")
    body = _problem(response, 401)
    assert body["title"] == "Unauthorized"
    assert "missing" in body["detail"].lower()
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert not _forwarded(response)


def test_a_valid_token_reaches_the_service_which_answers_for_itself(
    http: httpx.Client, token: str, scheduler_port: int
) -> None:
    through = http.get("/api/scheduler/me", headers=_bearer(token))
    assert through.status_code == 200, through.text
    assert _forwarded(through)
    assert through.json()["username"] == "demo"  # the service read the forwarded token itself
    direct = httpx.get(f"http://127.0.0.1:{scheduler_port}/me", headers=_bearer(token), timeout=10)
    assert through.json() == direct.json()


def test_the_api_docs_through_the_gateway_load_their_schema_from_the_gateways_path(
    http: httpx.Client, scheduler_port: int
) -> None:
    docs = http.get("/api/scheduler/docs")  # public, like the schema: no token
    assert docs.status_code == 200, docs.text
    assert "'/api/scheduler/openapi.json'" in docs.text or '"/api/scheduler/openapi.json"' in docs.text
    schema = http.get("/api/scheduler/openapi.json")
    assert schema.status_code == 200 and schema.json()["servers"] == [{"url": "/api/scheduler"}]
    direct = httpx.get(f"http://127.0.0.1:{scheduler_port}/openapi.json", timeout=10).json()
    assert "servers" not in direct  # called directly, the service is at its own root
    spoofed = httpx.get(
        f"http://127.0.0.1:{scheduler_port}/openapi.json",
        headers={"x-forwarded-prefix": "https://evil.example/x"},
        timeout=10,
    ).json()
    assert "servers" not in spoofed  # only a gateway path is taken


def test_a_tampered_token_is_401(http: httpx.Client, token: str) -> None:
    header, payload, signature = token.split(".")
    flipped = ("A" if signature[5] != "A" else "B").join((signature[:5], signature[6:]))
    response = http.get("/api/scheduler/me", headers=_bearer(f"{header}.{payload}.{flipped}"))
    assert "verification fails" in _problem(response, 401)["detail"].lower()
    # The claims changed (a longer lifetime) under the original signature: as invalid.
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] += 3600
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = http.get("/api/scheduler/me", headers=_bearer(f"{header}.{forged}.{signature}"))
    _problem(response, 401)
    assert not _forwarded(response)


@dataclass
class RealmKey:
    """A signing key this module added to the realm (lowest priority: Keycloak keeps signing with its own)."""

    kid: str
    private_pem: str
    issuer: str
    accepted_after_s: float
    fetches_before: int
    fetches_after: int

    def sign(self, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": "forge",
            "sub": str(uuid.uuid4()),
            "preferred_username": "demo",
            "azp": "forge-cli",
            "typ": "Bearer",
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        return jwt.encode(body, self.private_pem, algorithm="RS256", headers={"kid": self.kid})


def _admin_headers(env: dict[str, str]) -> dict[str, str]:
    response = httpx.post(
        f"{env['FORGE_KEYCLOAK_URL']}/realms/master/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": env.get("FORGE_KEYCLOAK_ADMIN_USER", "admin"),
            "password": env["FORGE_KEYCLOAK_ADMIN_PASSWORD"],
        },
        timeout=30,
    )
    response.raise_for_status()
    return {"authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
def realm_key(env: dict[str, str], gateway: Gateway, http: httpx.Client) -> Iterator[RealmKey]:
    """Rotation: a key added to the realm after the gateway loaded its keys, then used to sign tokens."""
    issuer = env["FORGE_OIDC_ISSUER"]
    keycloak = env["FORGE_KEYCLOAK_URL"]
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    admin = _admin_headers(env)
    realm_id = httpx.get(f"{keycloak}/admin/realms/forge", headers=admin, timeout=30).json()["id"]
    created = httpx.post(
        f"{keycloak}/admin/realms/forge/components",
        headers=admin,
        json={
            "name": f"gateway-test-{uuid.uuid4().hex[:6]}",
            "providerId": "rsa",
            "providerType": "org.keycloak.keys.KeyProvider",
            "parentId": realm_id,
            "config": {
                "priority": ["-1000"],
                "enabled": ["true"],
                "active": ["true"],
                "algorithm": ["RS256"],
                "privateKey": [pem],
            },
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    component = created.headers["location"].rsplit("/", 1)[1]
    try:
        modulus = private.public_key().public_numbers().n
        n = base64.urlsafe_b64encode(modulus.to_bytes((modulus.bit_length() + 7) // 8, "big")).rstrip(b"=")
        keys = httpx.get(f"{issuer}/protocol/openid-connect/certs", timeout=30).json()["keys"]
        (kid,) = [k["kid"] for k in keys if k.get("n") == n.decode()]
        key = RealmKey(kid, pem, issuer, 0.0, gateway.jwks_fetches(), 0)
        token = key.sign()
        begin = time.monotonic()
        _wait_until(
            lambda: _forwarded(http.get("/api/scheduler/me", headers=_bearer(token))),
            timeout_s=KEY_CACHE_S + 10,
            what="a token signed by the new key accepted",
        )
        key.accepted_after_s = time.monotonic() - begin
        key.fetches_after = gateway.jwks_fetches()
        yield key
    finally:
        httpx.delete(f"{keycloak}/admin/realms/forge/components/{component}", headers=admin, timeout=30)


def test_a_key_added_to_the_realm_is_accepted_without_restarting_the_gateway(
    realm_key: RealmKey, gateway: Gateway
) -> None:
    assert realm_key.fetches_after > realm_key.fetches_before  # the gateway refetched the realm's keys
    assert realm_key.accepted_after_s <= KEY_CACHE_S + 10
    assert gateway.running()


def test_an_expired_token_is_401(http: httpx.Client, realm_key: RealmKey) -> None:
    now = int(time.time())
    expired = realm_key.sign(iat=now - 600, exp=now - 120)
    response = http.get("/api/scheduler/me", headers=_bearer(expired))
    assert "expired" in _problem(response, 401)["detail"].lower()


def test_a_token_for_another_audience_or_issuer_is_401(http: httpx.Client, realm_key: RealmKey) -> None:
    response = http.get("/api/scheduler/me", headers=_bearer(realm_key.sign(aud="someone-else")))
    assert "audiences" in _problem(response, 401)["detail"].lower()
    assert response.headers["www-authenticate"].startswith("Bearer")
    response = http.get(
        "/api/scheduler/me", headers=_bearer(realm_key.sign(iss="http://127.0.0.1:1/realms/x"))
    )
    assert "issuer" in _problem(response, 401)["detail"].lower()


def test_the_public_paths_of_a_service_need_no_token(http: httpx.Client) -> None:
    for path in ("healthz", "readyz", "openapi.json", "docs"):
        response = http.get(f"/api/scheduler/{path}")
        assert response.status_code == 200, (path, response.text)
        assert _forwarded(response)
    assert "/me" in http.get("/api/scheduler/openapi.json").json()["paths"]


# --- request ids, access log ---------------------------------------------------------------------------


def test_a_request_id_is_generated_kept_and_returned(http: httpx.Client, gateway: Gateway) -> None:
    generated = http.get("/api/scheduler/healthz")
    assert uuid.UUID(generated.headers["x-request-id"])
    assert generated.headers.get_list("x-request-id") == [generated.headers["x-request-id"]]
    mine = f"caller-{uuid.uuid4().hex}"
    kept = http.get("/api/scheduler/healthz", headers={"x-request-id": mine})
    assert kept.headers["x-request-id"] == mine
    refused = http.get("/api/scheduler/me", headers={"x-request-id": f"{mine}-401"})
    assert refused.status_code == 401
    assert refused.headers["x-request-id"] == f"{mine}-401"

    def logged() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in gateway.log_path.read_text().splitlines() if mine in line]
        return lines if len(lines) == 2 else []

    entries = _wait_until(logged, timeout_s=10, what="the access log lines")
    by_id = {entry["request_id"]: entry for entry in entries}
    assert by_id[mine]["method"] == "GET"
    assert by_id[mine]["path"] == "/api/scheduler/healthz"
    assert by_id[mine]["status"] == 200
    assert isinstance(by_id[mine]["duration_ms"], int)
    assert by_id[f"{mine}-401"]["status"] == 401


# --- CORS ----------------------------------------------------------------------------------------------


def test_a_preflight_from_the_console_is_answered_by_the_gateway_without_a_token(http: httpx.Client) -> None:
    preflight = {
        "origin": CONSOLE,
        "access-control-request-method": "PATCH",
        "access-control-request-headers": "authorization,content-type,x-forge-tenant,idempotency-key",
    }
    allowed = http.options("/api/scheduler/projects", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == CONSOLE
    assert "PATCH" in allowed.headers["access-control-allow-methods"].split(",")
    assert set(CORS_HEADERS.split(",")) <= set(allowed.headers["access-control-allow-headers"].split(","))
    assert not _forwarded(allowed)

    other = http.options("/api/scheduler/projects", headers={**preflight, "origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    assert not _forwarded(other)
    # An actual request from the console's origin carries the allow header too.
    simple = http.get("/api/scheduler/healthz", headers={"origin": CONSOLE})
    assert simple.headers["access-control-allow-origin"] == CONSOLE


# --- limits --------------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_and_one_within_it_reaches_the_service(
    http: httpx.Client, token: str
) -> None:
    over = http.post("/api/scheduler/tenants", content=b"x" * (BODY_LIMIT + 1), headers=_bearer(token))
    assert "limit" in _problem(over, 413)["detail"]
    within = http.post("/api/scheduler/tenants", content=b"x" * BODY_LIMIT, headers=_bearer(token))
    assert _forwarded(within)  # the service's own answer (to a body that is not JSON)
    assert within.status_code != 413

    def chunked() -> Iterator[bytes]:
        for _ in range(BODY_LIMIT // 1024 + 1):
            yield b"x" * 1024

    _problem(http.post("/api/scheduler/tenants", content=chunked(), headers=_bearer(token)), 413)


def test_request_headers_over_the_limit_are_refused(http: httpx.Client) -> None:
    response = http.get("/api/scheduler/healthz", headers={"x-padding": "x" * 70 * 1024})
    assert response.status_code == 431


def test_the_rate_limit_answers_429(stack: Stack, scheduler_port: int) -> None:
    limited = Gateway(
        stack,
        name=f"gateway-test-rps-{uuid.uuid4().hex[:6]}",
        port=free_port(),
        admin_port=free_port(),
        upstreams={"scheduler": scheduler_port},
        limits=GatewayLimits(rps=5),
    )
    try:
        _start(limited)
        with httpx.Client(base_url=limited.url, timeout=10) as client:
            statuses = []
            for _ in range(40):  # bounded: 5 tokens a second cannot serve 40 requests on loopback
                response = client.get("/api/scheduler/healthz")
                statuses.append(response.status_code)
                if response.status_code == 429:
                    break
    finally:
        limited.stop()
    assert statuses[0] == 200
    assert statuses[-1] == 429, statuses
    assert response.headers["retry-after"] == "1"
    assert response.json()["title"] == "Too Many Requests"


# --- routing -------------------------------------------------------------------------------------------


def test_paths_outside_a_known_service_and_metrics_are_404(
    http: httpx.Client, token: str, scheduler_port: int
) -> None:
    for path in ("/api", "/api/scheduler", "/api/unknown/healthz", "/healthz", "/metrics"):
        _problem(http.get(path), 404)
    assert '<div id="root">' in http.get("/").text  # the rest is the web console's (docs/console.md)
    for headers in ({}, _bearer(token)):
        for path in ("/api/scheduler/metrics", "/api/scheduler/metrics/", "/api/scheduler//metrics"):
            assert http.get(path, headers=headers).status_code == 404, path
    # The service has them; the gateway does not show them.
    assert httpx.get(f"http://127.0.0.1:{scheduler_port}/metrics", timeout=10).status_code == 200
    # The prefix is rewritten: /api/scheduler/<path> is the service's /<path>.
    assert http.get("/api/scheduler/me", headers=_bearer(token)).json()["username"] == "demo"
