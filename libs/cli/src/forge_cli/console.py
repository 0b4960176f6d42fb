"""The web console: built from `console/` (React + TypeScript, Vite) and served behind the gateway.

Build (`ensure_console`): npm installs the locked dependencies once per `package-lock.json` into the
cache (`<cache>/console-deps-<lock hash>`), and Vite builds the sources once per content hash into
`<cache>/console-<hash>`; a warm stack start only hashes the sources. The type check (`tsc --noEmit`)
runs before each build, so a type error fails the build.

Serving (`ConsoleServer`, `python -m forge_cli.console`): a small Starlette app on loopback that the
gateway routes every non-`/api/` path to. It serves `index.html` (never cached, so a new build is picked
up at once), the hashed assets (cached for a year: their names change with their content), gzip, and
`/config.json`, the runtime settings the bundle reads (the identity provider's issuer, the console's
client id, the Temporal UI), so one build serves any deployment. Every answer carries a strict
Content-Security-Policy: scripts only from the console's own origin, connections only to it and to the
issuer, no framing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from forge_cli.identity import CONSOLE_CLIENT_ID, KEYCLOAK_ADMIN_USER, REALM
from forge_cli.stack import HOST, DetachedServer, Stack
from forge_cli.tools import ToolMissing, _cache_lock, cache_dir, repo_root

DEV_ORIGINS = ("http://127.0.0.1:5173", "http://localhost:5173")
"""Vite's dev server (`npm run dev` in console/), which proxies the gateway."""
REALM_LOCALES = {
    "internationalizationEnabled": True,
    "supportedLocales": ["en", "zh-CN"],
    "defaultLocale": "en",
}
BUILD_INPUTS = ("package.json", "package-lock.json", "index.html", "vite.config.ts", "tsconfig.json", "src")
"""What a build reads from `console/`: its hash names the build."""


def console_source() -> Path:
    return repo_root() / "console"


def _digest(paths: list[Path], base: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(base)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _inputs(source: Path) -> list[Path]:
    found: list[Path] = []
    for name in BUILD_INPUTS:
        path = source / name
        if path.is_dir():
            found += [p for p in path.rglob("*") if p.is_file()]
        elif path.exists():
            found.append(path)
    return found


def _npm() -> str:
    npm = shutil.which("npm")
    if not npm:
        raise ToolMissing("npm not found: run infra/local/bootstrap.sh (nodejs, npm)")
    return npm


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    if result.returncode != 0:
        raise ToolMissing(f"{' '.join(argv[:3])} failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")


def ensure_console(source: Path | None = None) -> Path:
    """The built console (a folder with index.html and assets/), building it when its sources changed."""
    source = source or console_source()
    out = cache_dir() / f"console-{_digest(_inputs(source), source)}"
    if (out / "index.html").exists():
        return out
    with _cache_lock("console"):
        if (out / "index.html").exists():
            return out
        lock_hash = _digest([source / "package.json", source / "package-lock.json"], source)
        deps = cache_dir() / f"console-deps-{lock_hash}"
        if not (deps / ".installed").exists():
            shutil.rmtree(deps, ignore_errors=True)
            deps.mkdir(parents=True)
            for name in ("package.json", "package-lock.json"):
                shutil.copy2(source / name, deps / name)
            _run([_npm(), "ci", "--no-audit", "--no-fund", "--loglevel=error"], deps)
            (deps / ".installed").touch()
        # Build in the dependencies' folder (its node_modules), from a fresh copy of the sources.
        for name in BUILD_INPUTS[2:]:
            target = deps / name
            if target.is_dir():
                shutil.rmtree(target)
            if (source / name).is_dir():
                shutil.copytree(source / name, target)
            else:
                shutil.copy2(source / name, target)
        partial = out.parent / f"{out.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        bin_dir = deps / "node_modules" / ".bin"
        _run([str(bin_dir / "tsc"), "--noEmit", "-p", "tsconfig.json"], deps)
        vite = [str(bin_dir / "vite"), "build", "--logLevel", "warn"]
        _run(vite, deps, {"FORGE_CONSOLE_OUT": str(partial)})
        partial.rename(out)
    # After a build: builds a week older than this one go (a cache, not every build ever made).
    for stale in cache_dir().glob("console-*"):
        if stale.is_dir() and not stale.name.startswith("console-deps-") and stale != out:
            if stale.stat().st_mtime < out.stat().st_mtime - 7 * 24 * 3600:
                shutil.rmtree(stale, ignore_errors=True)
    return out


def runtime_config(issuer: str, temporal_ui: str) -> dict[str, str]:
    """What `/config.json` tells the bundle."""
    from importlib.metadata import version

    return {
        "issuer": issuer,
        "client_id": CONSOLE_CLIENT_ID,
        "api": "/api",
        "temporal_ui": temporal_ui,
        "version": version("forge-cli"),
    }


def security_headers(issuer: str) -> dict[str, str]:
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(issuer))
    policy = "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            f"connect-src 'self' {origin}",
            "img-src 'self' data: blob:",
            "media-src 'self' blob:",
            "style-src 'self' 'unsafe-inline'",  # React's style attributes (progress bar widths)
            "frame-ancestors 'none'",
            "base-uri 'none'",
            f"form-action 'self' {origin}",
        ]
    )
    return {
        "content-security-policy": policy,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
    }


def app(dist: Path, config: dict[str, str]) -> Any:
    """The console's ASGI app (Starlette)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Route

    headers = security_headers(config["issuer"])
    assets = (dist / "assets").resolve()

    async def index(_: Request) -> Response:
        return FileResponse(dist / "index.html", headers={**headers, "cache-control": "no-cache"})

    async def settings(_: Request) -> Response:
        return JSONResponse(config, headers={**headers, "cache-control": "no-store"})

    def not_found(request: Request) -> Response:
        # As the gateway's own answers (problem+json with the request id), for any path of no page.
        problem = {
            "type": "about:blank",
            "title": "Not Found",
            "status": 404,
            "detail": "not found",
            "request_id": request.headers.get("x-request-id"),
        }
        return JSONResponse(problem, status_code=404, headers=headers, media_type="application/problem+json")

    async def asset(request: Request) -> Response:
        path = (assets / request.path_params["path"]).resolve()
        if not path.is_relative_to(assets) or not path.is_file():
            return not_found(request)
        return FileResponse(path, headers={**headers, "cache-control": "public, max-age=31536000, immutable"})

    async def anything_else(request: Request) -> Response:
        return not_found(request)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/index.html", index),
            Route("/config.json", settings),
            Route("/assets/{path:path}", asset),
            Route("/{path:path}", anything_else),
        ],
        middleware=[Middleware(GZipMiddleware, minimum_size=1024)],
    )


class ConsoleServer(DetachedServer):
    """The console's server in the local stack (loopback; users reach it through the gateway)."""

    name = "console"
    process_marker = "forge_cli.console"
    start_timeout_s = 30.0

    def __init__(self, stack: Stack) -> None:
        super().__init__(stack)
        self.port = stack.ports.console
        self.dist: Path | None = None

    @property
    def issuer(self) -> str:
        from forge_cli.gateway import keycloak_issuer

        return keycloak_issuer(self.stack.ports.keycloak)

    def endpoints(self) -> dict[str, str]:
        return {"http": f"http://{HOST}:{self.stack.ports.gateway}/ (via the gateway)"}

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dist = ensure_console()

    def revision(self, dist: Path) -> str:
        """What the running server must serve: this build, with this code (a change of either restarts
        it at the next `up`)."""
        return hashlib.sha256(str(dist).encode() + Path(__file__).read_bytes()).hexdigest()[:16]

    def argv(self) -> list[str]:
        assert self.dist is not None
        config = {
            **runtime_config(self.issuer, f"http://{HOST}:{self.stack.ports.temporal_ui}"),
            "revision": self.revision(self.dist),
        }
        return [
            sys.executable,
            "-m",
            "forge_cli.console",
            "--dist",
            str(self.dist),
            "--port",
            str(self.port),
            "--config",
            json.dumps(config),
        ]

    def origins(self) -> list[str]:
        """Where the console is loaded from: the gateway (by IP and by name) and Vite's dev server."""
        gateway = self.stack.ports.gateway
        return [f"http://{HOST}:{gateway}", f"http://localhost:{gateway}", *DEV_ORIGINS]

    def after_start(self) -> None:
        """Tell the identity provider exactly where the console lives: its redirect URIs and the origins
        allowed to call the token endpoint (CORS), following the stack's ports. The realm file cannot:
        it is imported once, and the gateway's port is chosen at `up`."""
        if not any(server.name == "keycloak" for server in self.stack.servers):
            return
        keycloak = f"http://{HOST}:{self.stack.ports.keycloak}"
        token = httpx.post(
            f"{keycloak}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": KEYCLOAK_ADMIN_USER,
                "password": self.stack.secrets.get("KEYCLOAK_ADMIN_PASSWORD"),
            },
            timeout=30,
        )
        token.raise_for_status()
        headers = {"authorization": f"Bearer {token.json()['access_token']}"}
        clients = f"{keycloak}/admin/realms/{REALM}/clients"
        found = httpx.get(clients, params={"clientId": CONSOLE_CLIENT_ID}, headers=headers, timeout=30)
        found.raise_for_status()
        (client,) = found.json()
        origins = self.origins()
        wanted = {
            "redirectUris": [f"{origin}/" for origin in origins],
            "webOrigins": origins,
            "attributes": {
                **client.get("attributes", {}),
                "post.logout.redirect.uris": "##".join(f"{origin}/" for origin in origins),
            },
        }
        if any(client.get(key) != value for key, value in wanted.items()):
            updated = httpx.put(
                f"{clients}/{client['id']}", json={**client, **wanted}, headers=headers, timeout=30
            )
            updated.raise_for_status()
        # The sign-in page in the console's languages (it asks with `ui_locales`); the realm file says the
        # same for new realms, this for realms imported before it did.
        realm = f"{keycloak}/admin/realms/{REALM}"
        current = httpx.get(realm, headers=headers, timeout=30)
        current.raise_for_status()
        if any(current.json().get(key) != value for key, value in REALM_LOCALES.items()):
            httpx.put(realm, json=REALM_LOCALES, headers=headers, timeout=30).raise_for_status()

    def healthy(self) -> bool:
        try:
            response = httpx.get(f"http://{HOST}:{self.port}/config.json", timeout=2)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        try:  # a server of an older build or older code is restarted on the new one
            wanted = self.revision(self.dist or ensure_console())  # the build it was started on, once started
            return bool(response.json().get("revision") == wanted)
        except (ValueError, ToolMissing):
            return False


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the built Forge console.")
    parser.add_argument("--dist", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--config", required=True, help="the runtime configuration, as JSON")
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(
        app(args.dist, json.loads(args.config)),
        host=HOST,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
