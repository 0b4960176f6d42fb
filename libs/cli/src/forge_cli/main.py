"""`forge`: bring the platform up and down, and look at the local stack."""

from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.table import Table

from forge_cli import tools
from forge_cli.services import Platform
from forge_cli.stack import Stack, StackError

app = typer.Typer(help="Forge: develop, train, fine-tune and deliver models.", no_args_is_help=True)
stack_app = typer.Typer(
    help="The local stack of real servers: Postgres, Kafka, Temporal, MinIO.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
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
    """Fetch and build what the stack needs (Kafka jars, MinIO); cached, so later runs are instant."""
    with console.status("Resolving Kafka jars from Maven Central..."):
        tools.ensure_kafka_libs()
    with console.status("Building MinIO from source with go install (first time: a few minutes)..."):
        tools.ensure_minio()
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


if __name__ == "__main__":
    app()
