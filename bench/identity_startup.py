"""Start-up time, memory and token latency of the identity provider (OpenLDAP + Keycloak).

Measured on a throwaway stack of PostgreSQL, slapd and Keycloak (own ports and state folder), so a
running stack is not disturbed. Keycloak's distribution is already downloaded and built in the tool
cache (`forge stack install`), as on every start after the first on a machine:
- cold: empty state folder (slapd configured and seeded; Keycloak's database schema created and the
  realm imported);
- warm: the same state folder after `down` (the usual start) — the baseline;
- sign-in: the first password grant of an LDAP user (looked up in LDAP and imported), then the
  median of later password grants (an LDAP bind each) and of client-credentials grants.
Steady memory is the resident set (RSS) of each server's process tree after it has idled.
Prints a Markdown table; `--write` also replaces the identity section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from forge_cli import tools
from forge_cli.stack import Ports, Stack
from forge_kit.stack_env import load_stack_settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section
from stack_startup import _tree_rss_bytes

PORTS = Ports(
    pg=15732,
    ldap=18689,
    keycloak=18380,
    keycloak_management=18390,
)
IDENTITY = ("postgres", "ldap", "keycloak")  # Keycloak keeps its data in PostgreSQL
SETTLE_S = 15.0
GRANTS = 20


def _timed_up(stack: Stack) -> tuple[float, dict[str, float]]:
    begin = time.monotonic()
    per_server = stack.up()
    return time.monotonic() - begin, per_server


def _grants(stack: Stack) -> tuple[float, float, float]:
    """Seconds for the first sign-in of an LDAP user, then medians of password and client grants."""
    settings = load_stack_settings(stack.env_file)
    token_url = f"{settings.oidc_issuer}/protocol/openid-connect/token"
    password = {
        "grant_type": "password",
        "client_id": settings.cli_client_id,
        "username": "pat",
        "password": settings.demo_password.get_secret_value(),
    }
    client_id, secret = settings.service_client("dataset")
    client = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret.get_secret_value(),
    }

    def timed(data: dict[str, str]) -> float:
        begin = time.monotonic()
        response = httpx.post(token_url, data=data, timeout=60)
        response.raise_for_status()
        return time.monotonic() - begin

    first = timed(password)
    later = statistics.median(timed(password) for _ in range(GRANTS))
    service = statistics.median(timed(client) for _ in range(GRANTS))
    return first, later, service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    tools.ensure_keycloak()  # one-time download and build, not part of a start
    with tempfile.TemporaryDirectory(prefix="forge-bench-identity-") as tmp:
        home = Path(tmp)
        home.chmod(0o755)
        stack = Stack(home=home, ports=PORTS)
        stack.servers = [s for s in stack.servers if s.name in IDENTITY]
        try:
            cold_s, cold = _timed_up(stack)
            first, later, service = _grants(stack)
            time.sleep(SETTLE_S)
            rss = {s.name: _tree_rss_bytes(s.pid() or 0) for s in stack.servers}
            stack.down()
            warm_s, warm = _timed_up(stack)
        finally:
            stack.down()
    rows = [
        "| server | cold start (s) | warm start (s) | steady RSS (MiB) |",
        "|---|---:|---:|---:|",
    ]
    for name in ("ldap", "keycloak"):
        rows.append(f"| {name} | {cold[name]:.1f} | {warm[name]:.1f} | {rss[name] / 2**20:.0f} |")
    summary = (
        f"Keycloak cold start / warm start = **{cold['keycloak'] / warm['keycloak']:.2f}x** "
        f"(wall, with PostgreSQL: {cold_s:.1f}s cold, {warm_s:.1f}s warm). "
        f"First sign-in of an LDAP user (lookup + import) {first * 1000:.0f} ms; later password grants "
        f"(an LDAP bind each) {later * 1000:.0f} ms median; "
        f"client credentials {service * 1000:.0f} ms median."
    )
    table = "\n".join(rows) + "\n\n" + summary + "\n"
    print(table)
    if args.write:
        _write_section(table)


def _write_section(table: str) -> None:
    write_section(
        "identity-startup",
        "identity_startup.py",
        table,
        heading="## Identity: OpenLDAP and Keycloak (`bench/identity_startup.py`)",
        intro=(
            "Baseline: a warm start (state folder initialised, Keycloak's database and realm in place).\n"
            "Cold start adds seeding slapd, creating Keycloak's schema and importing the realm; the\n"
            "one-time download and `kc.sh build` of Keycloak (tool cache) is not part of either.\n\n"
        ),
    )


if __name__ == "__main__":
    main()
