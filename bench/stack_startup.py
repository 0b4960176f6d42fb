"""Cold start time and steady memory of the local stack.

Measured on a throwaway stack (own ports and state folder), so a running stack is not disturbed:
- cold: empty state folder (initdb, Kafka storage format, new SQLite and MinIO data);
- warm: the same state folder after `down` (the usual `forge up` on a developer machine) — the baseline;
- no-op: `up` while everything already runs.
Steady memory is the resident set (RSS) of each server's process tree after it has idled.
Prints a Markdown table; `--write` also replaces the stack section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from forge_cli.stack import Ports, Stack
from report import write_section

PORTS = Ports(
    pg=15632,
    kafka=19292,
    kafka_controller=19293,
    temporal=17433,
    temporal_ui=18433,
    temporal_http=17443,
    temporal_metrics=17434,
    minio=19200,
    minio_console=19201,
    ldap=18589,
    keycloak=18280,
    keycloak_management=18290,
    gateway=18200,
    gateway_admin=18209,
)
SETTLE_S = 15.0


def _tree_rss_bytes(pid: int) -> int:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            continue
    return total


def _timed_up(stack: Stack) -> tuple[float, dict[str, float]]:
    begin = time.monotonic()
    per_server = stack.up()
    return time.monotonic() - begin, per_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="forge-bench-") as tmp:
        home = Path(tmp)
        home.chmod(0o755)
        stack = Stack(home=home, ports=PORTS)
        try:
            cold_s, cold = _timed_up(stack)
            time.sleep(SETTLE_S)
            rss = {s.name: _tree_rss_bytes(s.pid() or 0) for s in stack.servers}
            noop_s, _ = _timed_up(stack)
            stack.down()
            warm_s, warm = _timed_up(stack)
        finally:
            stack.down()
    rows = [
        "| server | cold start (s) | warm start (s) | steady RSS (MiB) |",
        "|---|---:|---:|---:|",
    ]
    for name in cold:
        rows.append(f"| {name} | {cold[name]:.1f} | {warm[name]:.1f} | {rss[name] / 2**20:.0f} |")
    total_rss = sum(rss.values()) / 2**20
    rows.append(f"| **whole stack** (wall) | **{cold_s:.1f}** | **{warm_s:.1f}** | **{total_rss:.0f}** |")
    summary = (
        f"Cold start / warm start = **{cold_s / warm_s:.2f}x**; "
        f"`up` on a running stack (no-op) = {noop_s:.2f}s = {noop_s / warm_s:.2f}x warm start."
    )
    table = "\n".join(rows) + "\n\n" + summary + "\n"
    print(table)
    if args.write:
        _write_section(table)


def _write_section(table: str) -> None:
    write_section(
        "stack-startup", "stack_startup.py", table, heading="## Local stack: cold start and steady memory"
    )


if __name__ == "__main__":
    main()
