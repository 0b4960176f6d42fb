"""`forge models`: the registry as the signed-in user (`forge login`): model projects, their versions (by id
or number), comparing two versions, approving the release of a version whose evaluation failed the gate
(release approvers), and the base-model hub. A project is named by its id or its name."""

from __future__ import annotations

import json
from typing import Any

import typer
from forge_sdk.models import Models
from rich.table import Table

from forge_cli.userapi import (
    CliError,
    JsonOption,
    TenantOption,
    console,
    metrics_text,
    number,
    print_json,
    run,
    signed_in,
)

app = typer.Typer(
    help="The model registry: projects, versions, comparisons, release approvals, base models.",
    no_args_is_help=True,
)
ProjectArgument = typer.Argument(..., help="A model project's id or name.")
VersionArgument = typer.Argument(..., help="A version's id or number.")


def _models(tenant: str | None) -> Models:
    return signed_in(tenant).models


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return "-"
    return "[green]passed[/]" if passed else "[red]failed[/]"


@app.command("projects")
def projects(tenant: str = TenantOption, json_output: bool = JsonOption) -> None:
    """Your tenant's model projects."""

    def command() -> None:
        found = _models(tenant).projects()
        if json_output:
            print_json(found)
            return
        table = Table("id", "name", "gate", "created")
        for project in found:
            gate = ", ".join(
                " ".join(f"{name} {bound} {limit}" for bound, limit in sorted(bounds.items()))
                for name, bounds in sorted((project.get("gate") or {}).items())
            )
            table.add_row(project["id"], project["name"], gate or "-", project["created_at"][:19])
        console.print(table)

    run(command)


@app.command("create")
def create(
    name: str,
    desc: str = typer.Option("", help="What the model is for."),
    gate: str = typer.Option(
        None,
        help='Release-gate thresholds as JSON, e.g. \'{"perplexity": {"max": 50}, "bleu": {"min": 5}}\'.',
    ),
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """Create a model project; prints its id."""

    def command() -> None:
        fields: dict[str, Any] = {"desc": desc}
        if gate:
            try:
                fields["gate"] = json.loads(gate)
            except ValueError as error:
                raise CliError(f"--gate is not JSON ({error})") from None
        created = _models(tenant).create_project(name, **fields)
        if json_output:
            print_json(created)
        else:
            console.print(created["id"])

    run(command)


@app.command("versions")
def versions(
    project: str = ProjectArgument,
    tag: str = typer.Option(None, help="Only versions with this tag."),
    state: str = typer.Option(None, help="Only versions in this state (released, delivered...)."),
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """A project's versions: state, evaluation verdict, metrics, tags."""

    def command() -> None:
        found = _models(tenant).versions(project, tag=tag, state=state)
        if json_output:
            print_json(found)
            return
        table = Table("number", "id", "state", "evaluation", "metrics", "tags")
        for version in sorted(found, key=lambda v: v["version"]):
            metrics = metrics_text(version.get("metrics") or {})
            table.add_row(
                str(version["version"]),
                version["id"],
                version["state"],
                _verdict(version.get("evaluation_passed")),
                metrics or "-",
                ", ".join(version.get("tags") or []) or "-",
            )
        console.print(table)

    run(command)


@app.command("show")
def show(
    project: str = ProjectArgument,
    version: str = typer.Argument(None, help="A version's id or number; without it, the project."),
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """A project with its versions' counts by state, or one version: state, lineage, metrics, delivery."""

    def command() -> None:
        models = _models(tenant)
        if version is None:
            detail = models.project(project)
            if json_output:
                print_json(detail)
                return
            status = detail["status"]
            states = ", ".join(f"{k} {n}" for k, n in sorted(status["versions_by_state"].items())) or "none"
            console.print(
                f"project [bold]{detail['name']}[/] {detail['id']}: versions {states}", highlight=False
            )
            console.print(
                f"  latest {status['latest_version'] or '-'}, "
                f"released {status['latest_released_version'] or '-'}, "
                f"delivered {status['latest_delivered_version'] or '-'}",
                highlight=False,
            )
            return
        found = models.version(project, version)
        if json_output:
            print_json(found)
            return
        console.print(
            f"version {found['version']} [bold]{found['id']}[/]: {found['state']}, evaluation "
            f"{_verdict(found.get('evaluation_passed'))}",
            highlight=False,
        )
        metrics = metrics_text(found.get("metrics") or {})
        console.print(f"  metrics: {metrics or '-'}", highlight=False)
        console.print(f"  artifact {found['artifact_uri']}", highlight=False)
        console.print(
            f"  training job {found.get('training_job_id') or '-'}; "
            f"base model {found.get('base_model_id') or '-'}",
            highlight=False,
        )
        for dataset in found.get("dataset_versions") or []:
            console.print(f"  dataset version {dataset.get('id')}", highlight=False)
        if found.get("bundle_uri"):
            console.print(f"  delivered: {found['bundle_uri']}", highlight=False)

    run(command)


@app.command("compare")
def compare(
    project: str = ProjectArgument,
    a: str = typer.Argument(..., help="The first version (id or number)."),
    b: str = typer.Argument(..., help="The second version (id or number)."),
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """Two versions side by side: metrics and evaluation metrics (delta = b - a), hyper-parameters."""

    def command() -> None:
        found = _models(tenant).compare(project, a, b)
        if json_output:
            print_json(found)
            return
        left, right = found["a"], found["b"]
        table = Table(
            "", f"v{left['version']} ({left['state']})", f"v{right['version']} ({right['state']})", "delta"
        )
        for kind, rows in (("", found["metrics"]), ("eval ", found["evaluation_metrics"])):
            for name, values in sorted(rows.items()):
                table.add_row(
                    f"{kind}{name}",
                    number(values.get("a")),
                    number(values.get("b")),
                    number(values.get("delta")),
                )
        for name, values in sorted(found["hyperparameters"].items()):
            if not values.get("same"):
                table.add_row(name, str(values.get("a")), str(values.get("b")), "[yellow]differs[/]")
        console.print(table)

    run(command)


@app.command("approve")
def approve(
    project: str = ProjectArgument,
    version: str = VersionArgument,
    reason: str = typer.Option(..., help="Why it may be released although its evaluation failed (audited)."),
    alias: str = typer.Option(None, help="Move this alias (e.g. prod) to the version."),
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """Release a version whose evaluation failed the gate (release approvers only; you are the approver)."""

    def command() -> None:
        released = _models(tenant).approve(project, version, reason, alias=alias)
        if json_output:
            print_json(released)
            return
        console.print(f"version {released['version']} {released['id']}: {released['state']}", highlight=False)

    run(command)


@app.command("base-models")
def base_models(
    name: str = typer.Option(None, help="Only base models with this name."),
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """The base models of your tenant's hub (what jobs and chains fine-tune, by id)."""

    def command() -> None:
        found = _models(tenant).base_models(name)
        if json_output:
            print_json(found)
            return
        table = Table("id", "name", "version", "architecture", "parameters", "uri")
        for model in found:
            table.add_row(
                model["id"],
                model["name"],
                model["version"],
                model["architecture"],
                f"{model['parameter_count']:,}",
                model["uri"],
            )
        console.print(table)

    run(command)
