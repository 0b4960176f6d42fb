"""`forge`: bring the platform up and down, and look at the local stack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx
import typer
from forge_kit.stack_env import load_stack_settings
from forge_sdk import Forge, auth
from forge_sdk.chains import ChainStopped
from rich.console import Console
from rich.table import Table

from forge_cli import chains, datasets, hdfs, jobs, models, tools
from forge_cli.console import ensure_console
from forge_cli.demo import (
    DemoError,
    build_inputs,
    chain_body,
    set_up,
    sign_in_demo,
    start_chain,
)
from forge_cli.services import Platform
from forge_cli.stack import Stack, StackError
from forge_cli.userapi import metrics_text

app = typer.Typer(help="Forge: develop, train, fine-tune and deliver models.", no_args_is_help=True)
stack_app = typer.Typer(
    help="The local stack of real servers: Postgres, Kafka, Temporal, MinIO.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
app.add_typer(datasets.app, name="datasets")
app.add_typer(jobs.app, name="jobs")
app.add_typer(models.app, name="models")
app.add_typer(chains.app, name="chains")
console = Console()


def _print_status(stack: Stack) -> bool:
    table = Table(title=f"Forge local stack ({stack.home})")
    for column in ("server", "state", "pid", "endpoints", "log"):
        table.add_column(column)
    all_running = True
    crashed = []
    for status in stack.status():
        colour = {"running": "green", "stopped": "yellow"}.get(status.state, "red")
        endpoints = "\n".join(f"{k}: {v}" for k, v in status.endpoints.items())
        table.add_row(
            status.name,
            f"[{colour}]{status.state}[/]",
            str(status.pid or "-"),
            endpoints,
            str(status.log_path),
        )
        all_running &= status.state == "running"
        if status.log_tail:
            crashed.append(status)
    console.print(table)
    for status in crashed:
        console.print(f"[red]{status.name} is {status.state}[/]; last lines of {status.log_path}:")
        console.print(status.log_tail, markup=False, highlight=False)
    return all_running


@stack_app.command("install")
def stack_install() -> None:
    """Fetch and build what the stack needs (Kafka, MinIO, Keycloak, HDFS); cached, so later runs are fast."""
    with console.status("Resolving Kafka jars from Maven Central..."):
        tools.ensure_kafka_libs()
    with console.status("Building MinIO from source with go install (first time: a few minutes)..."):
        tools.ensure_minio()
    with console.status("Fetching Keycloak from Maven Central and building it (first time: a minute)..."):
        tools.ensure_keycloak()
    with console.status("Building the tests' HDFS (MiniDFSCluster) with Maven (first time: ~15 s)..."):
        hdfs.ensure_hdfs()
    with console.status("Building the web console with npm and Vite (first time: a minute)..."):
        ensure_console()
    console.print(f"tools ready in {tools.cache_dir()}")


@stack_app.command("up")
def stack_up() -> None:
    """Start every server that is not running and wait until all are healthy (idempotent)."""
    stack_install()
    stack = Stack()
    begin = time.monotonic()

    def ready(name: str, seconds: float) -> None:
        note = "already running" if seconds == 0 else f"healthy in {seconds:.1f}s"
        console.print(f"  [green]✓[/] {name} {note}")

    try:
        with console.status("Starting Postgres, Kafka, Temporal and MinIO..."):
            stack.up(on_ready=ready)
    except StackError as error:
        console.print(f"[red]stack failed to start:[/] {error}", markup=True, highlight=False)
        raise typer.Exit(1) from error
    _print_status(stack)
    console.print(f"stack up in {time.monotonic() - begin:.1f}s; endpoints written to {stack.env_file}")
    console.print(f"Temporal UI: {stack.servers[2].endpoints()['ui']}")


@stack_app.command("down")
def stack_down() -> None:
    """Stop every server of the stack; no process is left behind."""
    stack = Stack()
    stack.down()
    left = stack.pids()
    if left:
        console.print(f"[red]processes still alive: {left}[/]")
        raise typer.Exit(1)
    console.print("stack stopped")


@stack_app.command("status")
def stack_status() -> None:
    """Show each server's state; a crashed one is shown with the tail of its log. Exit 1 unless all run."""
    if not _print_status(Stack()):
        raise typer.Exit(1)


@app.command("up")
def up() -> None:
    """Bring the platform up: the stack, then every service (idempotent)."""
    stack_install()
    platform = Platform()
    begin = time.monotonic()
    try:
        with console.status("Starting the stack and the services..."):
            platform.up()
    except StackError as error:
        console.print(f"[red]platform failed to start:[/] {error}", highlight=False)
        raise typer.Exit(1) from error
    _print_platform(platform)
    console.print(f"platform up in {time.monotonic() - begin:.1f}s; endpoints in {platform.stack.env_file}")
    console.print(f"Temporal UI: {platform.stack.servers[2].endpoints()['ui']}")
    console.print(f"API gateway: http://127.0.0.1:{platform.stack.ports.gateway}/api/<service>/")
    console.print(f"Web console: http://127.0.0.1:{platform.stack.ports.gateway}/")


@app.command("down")
def down() -> None:
    """Stop the services, then the stack; no process is left behind."""
    platform = Platform()
    platform.down()
    left = platform.stack.pids() + [pid for s in platform.services if s.running() and (pid := s.pid())]
    if left:
        console.print(f"[red]processes still alive: {left}[/]")
        raise typer.Exit(1)
    console.print("platform stopped")


@app.command("status")
def status() -> None:
    """State of the stack's servers and of every service. Exit 1 unless all run."""
    if not _print_platform(Platform()):
        raise typer.Exit(1)


def _print_platform(platform: Platform) -> bool:
    healthy = _print_status(platform.stack)
    table = Table(title="Forge services")
    for column in ("service", "state", "pid", "endpoint", "log"):
        table.add_column(column)
    for service in platform.services:
        state = service.status()
        colour = {"running": "green", "stopped": "yellow"}.get(state.state, "red")
        table.add_row(
            service.name,
            f"[{colour}]{state.state}[/]",
            str(state.pid or "-"),
            state.endpoints["http"],
            str(state.log_path),
        )
        healthy &= state.state == "running"
    for name in platform.missing:
        table.add_row(name, "[dim]not built yet[/]", "-", "-", "-")
    console.print(table)
    return healthy


def _stack_env() -> dict[str, str]:
    from forge_kit.stack_env import env_file_path, read_env_file

    return read_env_file(env_file_path())


def _api_url(env: Mapping[str, str], service: str) -> str:
    gateway = env.get("FORGE_GATEWAY_URL")
    return f"{gateway}/api/{service}" if gateway else env.get(f"FORGE_{service.upper()}_URL", "")


@app.command("login")
def login(
    username: str = typer.Option(None, help="Sign in with a password instead of a browser (device flow)."),
    password: str = typer.Option(None, envvar="FORGE_PASSWORD", help="With --username (or FORGE_PASSWORD)."),
    issuer: str = typer.Option(None, envvar="FORGE_OIDC_ISSUER", help="Default: the local stack's issuer."),
) -> None:
    """Sign in to Forge; the session is kept for the next commands (`forge whoami`, `forge demo`...)."""
    issuer = issuer or _stack_env().get("FORGE_OIDC_ISSUER", "")
    if not issuer:
        console.print("[red]no issuer:[/] start the stack (`forge up`) or pass --issuer")
        raise typer.Exit(2)

    def show(url: str, code: str, expires_in_s: int) -> None:
        console.print(
            f"Open {url} in a browser and confirm the code [bold]{code}[/] (within {expires_in_s // 60} min)."
        )

    try:
        if username:
            secret = password or typer.prompt("Password", hide_input=True)
            tokens = auth.password_login(issuer, username, secret)
        else:
            tokens = auth.device_login(issuer, show)
    except auth.LoginError as error:
        console.print(f"[red]sign-in failed:[/] {error}")
        raise typer.Exit(1) from error
    path = auth.save(tokens)
    console.print(f"signed in{f' as {tokens.username}' if tokens.username else ''}; session kept in {path}")


@app.command("logout")
def logout() -> None:
    """Forget the saved session."""
    auth.credentials_path().unlink(missing_ok=True)
    console.print("signed out")


@app.command("whoami")
def whoami(json_output: bool = typer.Option(False, "--json", help="Print the profile as JSON.")) -> None:
    """Who Forge says you are, and your roles in each of your tenants."""
    tokens = auth.load()
    if tokens is None:
        console.print("not signed in: `forge login`")
        raise typer.Exit(1)
    try:
        session = auth.SignedIn(tokens)
        response = httpx.get(f"{_api_url(_stack_env(), 'scheduler')}/me", headers=session, timeout=30)
    except auth.LoginError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from error
    auth.save(session.tokens)
    if response.status_code != 200:
        console.print(f"[red]{response.status_code}[/] {response.text[:300]}")
        raise typer.Exit(1)
    profile = response.json()
    if json_output:
        console.print_json(data=profile)
        return
    admin = " (platform admin)" if profile["platform_admin"] else ""
    console.print(f"{profile['username']}{admin}")
    for tenant in profile["tenants"]:
        roles = ", ".join(tenant["roles"]) or "-"
        console.print(f"  {tenant['tenant_id']}: {roles}")


@app.command("demo")
def demo(
    max_perplexity: float = typer.Option(
        1000.0,
        help="The release gate: the test split's perplexity must be "
        "at most this (the untrained base model scores about 1 400).",
    ),
    max_steps: int = typer.Option(20, help="LoRA training steps."),
) -> None:
    """Bring the platform up, then take a real model from raw data to a delivered bundle."""
    up()
    try:
        asyncio.run(_demo(max_perplexity, max_steps))
    except DemoError as error:
        console.print(f"[red]demo failed:[/] {error}", highlight=False)
        raise typer.Exit(1) from error


async def _demo(max_perplexity: float, max_steps: int) -> None:
    stack = Stack()
    settings = load_stack_settings(stack.env_file)
    env = dict(line.split("=", 1) for line in stack.env_file.read_text().splitlines() if "=" in line)
    # Through the gateway, as users come in; straight to the services when there is none.
    gateway = env.get("FORGE_GATEWAY_URL")
    urls = {
        name: f"{gateway}/api/{name}" if gateway else env.get(f"FORGE_{name.upper()}_URL")
        for name in ("dataset", "scheduler", "training", "registry", "delivery")
    }
    missing = [name for name, url in urls.items() if not url]
    if missing:
        raise DemoError(f"services not running: {', '.join(missing)} (see `forge status`)")
    with console.status("Building the sample data and a tiny base model with the training runtime..."):
        inputs = await asyncio.to_thread(build_inputs, stack.home / "demo")
    clients = {name: httpx.AsyncClient(base_url=str(url), timeout=120) for name, url in urls.items()}
    try:
        with console.status("Signing in as the demo user..."):
            caller, admin = await sign_in_demo(env, clients["scheduler"])
        console.print(f"  signed in as {caller.tokens.username} in tenant {caller.tenant}")
        with console.status("Publishing the dataset version, creating the model and scheduler projects..."):
            setup = await set_up(clients, settings, inputs, caller=caller, admin=admin)
        console.print(
            f"  dataset version {setup.dataset_version_id} published; base model at {setup.base_model_uri}"
        )
        body = chain_body(setup, {"perplexity": {"max": max_perplexity}}, max_steps=max_steps)
        started = await start_chain(clients["training"], setup, body)
        console.print(
            f"chain {started['chain_id']} started; watch it in the Temporal UI:\n  {started['temporal_ui']}"
        )

        # Followed as `forge chains follow` follows it: a line per stage, the training bar.
        forge = Forge(setup.caller, gateway=gateway, urls={k: v for k, v in urls.items() if v})
        try:
            done: dict[str, Any] = dict(
                await asyncio.to_thread(
                    chains.follow, forge.chains, forge.jobs, started["chain_id"], "delivered", False
                )
            )
        except ChainStopped as stopped:
            raise DemoError(f"{stopped}; see {started['temporal_ui']}") from stopped
    finally:
        for client in clients.values():
            await client.aclose()
    status = done["status"]
    console.print(f"[green]delivered[/] model version {status['model_version_id']}: {status['bundle_uri']}")
    console.print(f"  metrics: {metrics_text(status['metrics'])}", highlight=False)
    console.print(f"  Temporal UI: {done['temporal_ui']}")
    user = env.get("FORGE_DEMO_USER", "demo")
    console.print(
        f"Web console: [bold]{gateway}/[/] - sign in as [bold]{user}[/] with the password "
        f"[bold]{env['FORGE_DEMO_PASSWORD']}[/]",
        highlight=False,
    )
    chain_page = f"{gateway}/#/chains/{started['chain_id']}"
    console.print(f"  (FORGE_DEMO_PASSWORD in {stack.env_file}); this chain: {chain_page}", highlight=False)


if __name__ == "__main__":
    app()
