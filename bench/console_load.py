"""First load of the web console, and its bundle size, against the Temporal UI on the same machine.

Runs against the stack started by `forge stack up` (the gateway serves the console). Each load is a new
browser context of Debian's Chromium (Playwright, headless): an empty cache, as a first visit.
- signed out: from navigation to the sign-in button on screen (index.html, the script, the stylesheet and
  `/config.json` fetched, React rendered);
- signed in (when the services are up, `forge up`): from navigation to the overview's data on screen —
  the caller's profile (`/api/scheduler/me`) and the recent chains read through the gateway — with a
  session put in the tab's storage first (a token from the password grant), as after a sign-in;
- baseline: the Temporal UI (the stack's other web console, SvelteKit) loaded the same way: from
  navigation to its navigation bar on screen (its shell, as the sign-in page is ours), and to the first
  row of its workflow list (data read from the server, as our overview).
Bytes are what the page transferred (Resource Timing `transferSize`, compressed as served); the bundle
is the built files on disk, raw and gzip-compressed. N loads each, interleaved; medians are reported.
Prints a Markdown table; `--write` also replaces the console section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from forge_cli.console import ensure_console
from forge_cli.stack import Stack
from forge_kit.stack_env import read_env_file
from forge_sdk.auth import password_login
from playwright.async_api import Browser, async_playwright
from report import write_section

CHROMIUM = "/usr/bin/chromium"
TEMPORAL_SHELL = "[data-testid=navigation-header]"
TEMPORAL_DATA = "table tbody tr >> nth=0"
"""The first workflow of the list (the stack has run workflows before `make bench` gets here)."""
TARGET_S = 2.0

TRANSFERRED = """() => [
  ...performance.getEntriesByType("navigation"),
  ...performance.getEntriesByType("resource"),
].reduce((sum, entry) => sum + (entry.transferSize || 0), 0)"""


async def _timed(browser: Browser, url: str, selector: str, init: str | None = None) -> tuple[float, int]:
    context = await browser.new_context(viewport={"width": 1360, "height": 860})
    try:
        if init:
            await context.add_init_script(init)
        page = await context.new_page()
        began = time.perf_counter()
        await page.goto(url, wait_until="commit")
        await page.wait_for_selector(selector, timeout=30_000)
        took = time.perf_counter() - began
        transferred = int(await page.evaluate(TRANSFERRED))
        return took, transferred
    finally:
        await context.close()


def _bundle() -> dict[str, int]:
    dist = ensure_console()
    files = [p for p in dist.rglob("*") if p.is_file()]
    raw = sum(p.stat().st_size for p in files)
    packed = sum(len(gzip.compress(p.read_bytes(), 6)) for p in files)
    js = sum(p.stat().st_size for p in files if p.suffix == ".js")
    return {"files": len(files), "raw": raw, "gzip": packed, "js": js}


def _services_up(env: dict[str, str]) -> bool:
    try:
        return httpx.get(f"{env.get('FORGE_SCHEDULER_URL', '')}/readyz", timeout=2).status_code == 200
    except (httpx.HTTPError, ValueError):
        return False


async def measure(runs: int) -> dict[str, Any]:
    stack = Stack()
    env = read_env_file(stack.env_file)
    gateway = env["FORGE_GATEWAY_URL"]
    console = f"{gateway}/"
    temporal = env["FORGE_TEMPORAL_UI_URL"] + "/namespaces/default/workflows"
    signed_in = None
    if await asyncio.to_thread(_services_up, env):
        tokens = password_login(env["FORGE_OIDC_ISSUER"], "demo", env["FORGE_DEMO_PASSWORD"])
        session = {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expires_at": int(time.time() * 1000) + 300_000,
            "username": "demo",
        }
        signed_in = f"sessionStorage.setItem('forge.session', {json.dumps(json.dumps(session))});"
    samples: dict[str, list[tuple[float, int]]] = {
        "signed_out": [],
        "signed_in": [],
        "temporal": [],
        "temporal_data": [],
    }
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            await _timed(browser, console, "[data-testid=sign-in]")  # warm the servers, not the browser
            await _timed(browser, temporal, TEMPORAL_SHELL)
            for _ in range(runs):
                samples["signed_out"].append(await _timed(browser, console, "[data-testid=sign-in]"))
                if signed_in:
                    samples["signed_in"].append(
                        await _timed(browser, console, "main table, main p.muted >> nth=0", signed_in)
                    )
                samples["temporal"].append(await _timed(browser, temporal, TEMPORAL_SHELL))
                samples["temporal_data"].append(await _timed(browser, temporal, TEMPORAL_DATA))
        finally:
            await browser.close()
    return {
        name: {
            "seconds": statistics.median(s for s, _ in values),
            "bytes": statistics.median(b for _, b in values),
        }
        for name, values in samples.items()
        if values
    } | {"bundle": _bundle(), "runs": runs}


def table(result: dict[str, Any]) -> str:
    data = result["temporal_data"]
    rows = [
        ("Forge console, signed out: sign-in button on screen", result["signed_out"], result["temporal"]),
        *(
            [("Forge console, signed in: overview data on screen", result["signed_in"], data)]
            if "signed_in" in result
            else []
        ),
        ("baseline: Temporal UI, navigation bar on screen", result["temporal"], None),
        ("baseline: Temporal UI, first workflow row on screen", result["temporal_data"], None),
    ]
    lines = [
        "| first load, empty cache | median | vs Temporal UI (same kind of moment) | transferred | target |",
        "|---|---|---|---|---|",
    ]
    for name, values, baseline in rows:
        took, size = f"{values['seconds'] * 1000:.0f} ms", f"{values['bytes'] / 1024:.0f} KiB"
        if baseline is None:
            lines.append(f"| {name} | {took} | 1.00x | {size} | |")
            continue
        ratio = baseline["seconds"] / values["seconds"]
        target = "met" if values["seconds"] < TARGET_S else "MISSED"
        lines.append(f"| {name} | {took} | {ratio:.2f}x faster | {size} | {target} (< {TARGET_S:.0f} s) |")
    bundle = result["bundle"]
    lines += [
        "",
        f"Bundle (the whole built console, {bundle['files']} files): {bundle['raw'] / 1024:.0f} KiB, "
        f"{bundle['gzip'] / 1024:.0f} KiB gzip-compressed (JavaScript {bundle['js'] / 1024:.0f} KiB raw); "
        f"{result['runs']} loads each, Chromium headless on this machine.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    result = asyncio.run(measure(args.runs))
    body = table(result)
    print(body)
    if args.write:
        write_section(
            "console-load",
            Path(__file__).name,
            body,
            heading="## Web console: first load and bundle size",
            intro="Issue 10's target: the console's first load under 2 s on this machine, and its bundle "
            "size recorded. The baseline is the Temporal UI served by the same stack, loaded the same "
            "way.\n\n",
        )


if __name__ == "__main__":
    main()
