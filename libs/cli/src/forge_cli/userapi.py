"""What the user commands (`forge datasets|jobs|models|chains`) share: the signed-in SDK client, the
`--tenant` and `--json` options, reading a JSON or YAML file, and one mapping of what went wrong to a
message and an exit code.

Exit codes: 0 done; 1 the task, job or chain ended failed, blocked or cancelled; 2 a usage error (typer's,
or a file or option the command cannot use); 3 Forge refused the request or could not be reached (the
problem's status, title and detail are printed); 4 not signed in (`forge login`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx
import typer
import yaml
from forge_sdk import ApiError, ChainStopped, Forge, JobFailed, NotSignedIn, Service, TaskFailed
from forge_sdk.auth import LoginError
from rich.console import Console

EXIT_ENDED = 1
EXIT_USAGE = 2
EXIT_API = 3
EXIT_SIGNED_OUT = 4

console = Console()
errors = Console(stderr=True)
TenantOption = typer.Option(
    None, "--tenant", envvar="FORGE_TENANT", help="Act in this tenant (if in several)."
)
JsonOption = typer.Option(False, "--json", help="Print the result as JSON.")
T = TypeVar("T")


class CliError(RuntimeError):
    """A file or option the command cannot use (exit code 2); the message says why."""


def signed_in(tenant: str | None) -> Forge:
    """The platform as the signed-in user (`forge login`), acting in `tenant`."""
    return Forge.signed_in(tenant)


def service(tenant: str | None, name: str) -> Service:
    """One service's API as the signed-in user, acting in `tenant`."""
    return signed_in(tenant).service(name)


def run(command: Callable[[], T]) -> T:
    """Run `command()`, turning what went wrong into a red line on stderr and its exit code."""
    try:
        return command()
    except (NotSignedIn, LoginError) as error:
        fail(EXIT_SIGNED_OUT, f"{error}" if isinstance(error, LoginError) else error.detail, error)
    except ApiError as error:
        if error.status == 401:
            fail(EXIT_SIGNED_OUT, f"Forge did not accept your session ({error.detail}): `forge login`", error)
        fail(EXIT_API, problem_line(error), error)
    except (TaskFailed, JobFailed, ChainStopped) as error:
        fail(EXIT_ENDED, str(error), error)
    except CliError as error:
        fail(EXIT_USAGE, str(error), error)
    except httpx.HTTPError as error:
        fail(EXIT_API, f"cannot reach Forge: {error}", error)


def fail(code: int, message: str, cause: BaseException | None = None) -> NoReturn:
    """Print `message` in red on stderr and exit with `code`."""
    errors.print(f"[red]{message}[/]", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code) from cause


def problem_line(error: ApiError) -> str:
    """`404 Not Found: model project 'x' does not exist` (status, the problem's title, its detail)."""
    title = f" {error.title}" if error.title and error.title != error.detail else ""
    return f"{error.status}{title}: {error.detail}"


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def read_document(path: Path) -> dict[str, Any]:
    """A JSON or YAML file holding one object (YAML for `.yaml`/`.yml`); CliError otherwise."""
    yaml_file = path.suffix.lower() in (".yaml", ".yml")
    try:
        text = path.read_text(encoding="utf-8")
        loaded = yaml.safe_load(text) if yaml_file else json.loads(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise CliError(f"{path}: not a {'YAML' if yaml_file else 'JSON'} file ({error})") from None
    if not isinstance(loaded, dict):
        raise CliError(f"{path}: expected one object (a mapping of fields), not {type(loaded).__name__}")
    return loaded


def number(value: Any) -> str:
    """A metric's value, four significant digits ("-" for none or not a number)."""
    return f"{value:.4g}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def metrics_text(metrics: dict[str, Any]) -> str:
    """`name value, ...` in name order."""
    return ", ".join(f"{name} {number(value)}" for name, value in sorted(metrics.items()))
