"""What the API gateway adds to a typical read: the same GET through Envoy and straight to the service.

Runs against the stack started by `forge stack up` (its Keycloak signs the token). Starts its own
scheduler process and its own gateway in front of it, each on a free port, so a running platform is
not disturbed. The read is `GET /tenants` (the caller's tenants, a list route reading the database)
with a real access token from the password grant: `http://127.0.0.1:<gateway>/api/scheduler/tenants`
against `http://127.0.0.1:<scheduler>/tenants`. Requests are sequential on one keep-alive connection
each, the two paths interleaved so both see the same machine; after a warm-up, N of each are timed.
Prints a Markdown table; `--write` also replaces the gateway section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Callable

import httpx
from forge_cli.gateway import Gateway, GatewayLimits
from forge_cli.services import ServiceProcess
from forge_cli.stack import Stack
from forge_kit.stack_env import read_env_file
from report import write_section

WARMUP = 200
ROUTE = "/tenants"
CHEAP = "/nowhere"
"""A path the service answers 404 at once: what is left is the gateway's own cost (token check, proxy)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(
    what: str, ready: Callable[[], bool], running: Callable[[], bool], timeout_s: float = 120.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not running():
            sys.exit(f"{what} exited while starting")
        if ready():
            return
        time.sleep(0.3)
    sys.exit(f"{what} not ready after {timeout_s:.0f}s")


def _token(env: dict[str, str]) -> str:
    response = httpx.post(
        f"{env['FORGE_OIDC_ISSUER']}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": env.get("FORGE_CLI_CLIENT_ID", "forge-cli"),
            "username": env.get("FORGE_DEMO_USER", "demo"),
            "password": env["FORGE_DEMO_PASSWORD"],
        },
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(requests: int) -> str:
    stack = Stack()
    env = read_env_file(stack.env_file)
    if not env.get("FORGE_OIDC_ISSUER"):
        sys.exit("the stack's env file names no OIDC issuer: run `forge stack up` first")
    port = _free_port()
    os.environ["FORGE_SCHEDULER_PORT"] = str(port)
    os.environ["FORGE_TASK_QUEUE"] = f"forge-scheduler-bench-{uuid.uuid4().hex[:8]}"
    service = ServiceProcess(stack, "scheduler", instance="gateway-bench-scheduler")
    gateway = Gateway(
        stack,
        name="gateway-bench",
        port=_free_port(),
        admin_port=_free_port(),
        upstreams={"scheduler": port},
        limits=GatewayLimits(rps=1_000_000),  # the bench measures latency, not the limiter
    )
    try:
        service.prepare()
        service.launch()
        gateway.prepare()
        gateway.launch()
        _wait("the scheduler", service.healthy, service.running)
        _wait("the gateway", gateway.healthy, gateway.running)
        headers = {"authorization": f"Bearer {_token(env)}"}
        direct_validates = httpx.get(f"{service.endpoints()['http']}{ROUTE}").status_code == 401
        with (
            httpx.Client(base_url=service.endpoints()["http"], headers=headers) as direct,
            httpx.Client(base_url=f"{gateway.url}/api/scheduler", headers=headers) as proxied,
        ):
            samples: dict[tuple[str, str], list[float]] = {}
            for route, expected in ((ROUTE, 200), (CHEAP, 404)):
                for i in range(WARMUP + requests):
                    for name, client in (("direct", direct), ("gateway", proxied)):
                        begin = time.perf_counter()
                        response = client.get(route)
                        took = time.perf_counter() - begin
                        if response.status_code != expected:
                            sys.exit(f"{name} GET {route}: {response.status_code} {response.text[:300]}")
                        if i >= WARMUP:
                            samples.setdefault((route, name), []).append(took * 1000)
    finally:
        gateway.stop()
        service.stop()
    return _table(samples, requests, direct_validates)


def _table(samples: dict[tuple[str, str], list[float]], requests: int, validates: bool) -> str:
    p50 = {key: statistics.median(values) for key, values in samples.items()}
    p99 = {key: _percentile(values, 0.99) for key, values in samples.items()}
    rows = [
        "| request | direct p50 (baseline) | gateway p50 | gateway / direct | direct p99 | gateway p99 "
        "| gateway / direct |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for route, what in ((ROUTE, "a list, read from the database"), (CHEAP, "404 at once, nothing to do")):
        d50, g50, d99, g99 = (
            p50[route, "direct"],
            p50[route, "gateway"],
            p99[route, "direct"],
            p99[route, "gateway"],
        )
        rows.append(
            f"| `GET {route}` ({what}) | {d50:.2f} ms | {g50:.2f} ms | **{g50 / d50:.2f}x** "
            f"| {d99:.2f} ms | {g99:.2f} ms | **{g99 / d99:.2f}x** |"
        )
    added = p50[ROUTE, "gateway"] - p50[ROUTE, "direct"]
    own = p50[CHEAP, "gateway"] - p50[CHEAP, "direct"]
    load = os.getloadavg()[0]
    note = (
        "The service validates the token itself as well (it answers 401 without one), so the gateway's "
        "check is the only extra work."
        if validates
        else "The service did not validate tokens itself when this was measured (it answered without one); "
        "re-run once services check tokens."
    )
    return (
        "\n".join(rows)
        + f"\n\n{requests:,} timed requests per row and path (after {WARMUP} warm-up), each with a valid "
        f"token, sequential on loopback; load average {load:.1f} on {os.cpu_count()} cores while measured. "
        f"The gateway adds {added:.2f} ms at the median to the list and {own:.2f} ms to the empty answer "
        f"(its own cost: token check, rate limit, request id, proxying, access log). {note}\n"
    )


def _write_section(table: str) -> None:
    write_section(
        "gateway-overhead",
        "gateway_overhead.py",
        table,
        heading="## API gateway: overhead of a read (`bench/gateway_overhead.py`)",
        intro=(
            "Baseline: the same request sent straight to the service. Through the gateway, Envoy also "
            "checks the\ntoken (signature against Keycloak's cached keys, issuer, audience, expiry), "
            "rate-limits, generates a\nrequest id and writes an access-log line.\n\n"
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per path")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    table = measure(args.requests)
    print(table)
    if args.write:
        _write_section(table)


if __name__ == "__main__":
    main()
