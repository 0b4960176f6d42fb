"""`forge chains`: start a model chain (dataset version -> training -> evaluation -> gate -> registered,
released and delivered model) from a JSON or YAML body, follow it stage by stage with the training run's
progress bar, list and show chains, approve a release whose gate failed (release approvers), cancel one;
as the signed-in user (`forge login`). Exit codes as in forge_cli.userapi (1: the followed chain failed,
was blocked or cancelled)."""

from __future__ import annotations

from pathlib import Path

import typer
from forge_sdk import ApiError
from forge_sdk.chains import Chain, Chains, ChainStatus, ChainStopped, stage_of
from forge_sdk.jobs import Jobs
from rich.table import Table

from forge_cli.jobs import JobBar
from forge_cli.userapi import (
    JsonOption,
    TenantOption,
    console,
    metrics_text,
    print_json,
    read_document,
    run,
    signed_in,
)

app = typer.Typer(
    help="Model chains: dataset version to delivered model in one workflow; follow, approve, cancel.",
    no_args_is_help=True,
)
BodyArgument = typer.Argument(
    ...,
    exists=True,
    dir_okay=False,
    readable=True,
    help="The chain as JSON or YAML: dataset_id, dataset_version_id, base_model_id, model_project_id, "
    "scheduler_project_id, training, gate, model_name, card (docs/training.md, the model chain).",
)
UntilOption = typer.Option("delivered", "--until", help="Stop following once the chain reaches this stage.")


class ChainWatcher:
    """One line per stage the chain enters and, while it trains, the training job's progress bar (step,
    loss, the training service's ETA)."""

    def __init__(self, jobs: Jobs, chain_id: str) -> None:
        self.jobs, self.chain_id = jobs, chain_id
        self.shown = 0  # stages of the timeline already printed
        self.bar: JobBar | None = None

    def update(self, chain: Chain) -> None:
        status = chain["status"]
        if status is None:
            return
        job_id = status.get("training_job_id")
        if self.bar is not None and status["stage"] != "training" and job_id:
            self._training(job_id)  # the bar ends where the run ended, then makes way
            self.close()
        marks = [mark["stage"] for mark in status.get("stages") or []] or [status["stage"]]
        for stage in marks[self.shown :]:
            self._stage_entered(stage, status)
        self.shown = len(marks)
        if status["stage"] == "training" and job_id:
            self._training(job_id)

    def _stage_entered(self, stage: str, status: ChainStatus) -> None:
        detail = {
            "training": f"job {status.get('training_job_id')} on allocation {status.get('allocation_id')}",
            "registering": metrics_text(status.get("metrics") or {}),
            "gating": f"model version {status.get('model_version_id')}",
            "awaiting_approval": (
                f"[yellow]the evaluation failed the gate ({', '.join(status.get('failed_checks') or [])}); "
                f"a release approver runs `forge chains approve {self.chain_id} --reason ...`[/]"
            ),
            "failed": f"[red]{status.get('error') or ''}[/]",
        }.get(stage, "")
        console.print(f"  stage: [bold]{stage}[/] {detail}", highlight=False)

    def _training(self, job_id: str) -> None:
        try:
            job = self.jobs.get(job_id)
        except ApiError:
            return  # the next poll tries again; the chain's own status says if it failed
        if self.bar is None:
            self.bar = JobBar("  training").start()
        self.bar.update(job)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def follow(chains: Chains, jobs: Jobs, chain_id: str, until: str, json_output: bool) -> Chain:
    """Follow a chain to `until` (stage lines and a training bar unless `json_output`); ChainStopped when it
    stops first."""
    if json_output:
        return chains.follow(chain_id, until)
    watcher = ChainWatcher(jobs, chain_id)
    try:
        return chains.follow(chain_id, until, on_poll=watcher.update)
    finally:
        watcher.close()


def _outcome(chain: Chain) -> None:
    status = chain["status"]
    if status is None:
        return
    if status["stage"] == "delivered":
        console.print(
            f"[green]delivered[/] model version {status.get('model_version_id')}: {status.get('bundle_uri')}",
            highlight=False,
        )
    else:
        console.print(f"chain {chain['chain_id']} is at stage [bold]{status['stage']}[/]", highlight=False)
    if status.get("metrics"):
        console.print(f"  metrics: {metrics_text(status['metrics'])}", highlight=False)
    console.print(f"  Temporal UI: {chain['temporal_ui']}", highlight=False)


@app.command("start")
def start(
    body: Path = BodyArgument,
    follow_it: bool = typer.Option(False, "--follow", "-f", help="Follow it (to --until) after starting."),
    until: str = UntilOption,
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """Start a chain (you are its actor); prints its id and its Temporal UI link."""

    def command() -> None:
        forge = signed_in(tenant)
        started = forge.chains.start(read_document(body))
        if not json_output:
            console.print(f"chain [bold]{started['chain_id']}[/] started", highlight=False)
            console.print(f"  Temporal UI: {started['temporal_ui']}", highlight=False)
        if not follow_it:
            if json_output:
                print_json(started)
            return
        done = follow(forge.chains, forge.jobs, started["chain_id"], until, json_output)
        if json_output:
            print_json(done)
        else:
            _outcome(done)

    run(command)


@app.command("follow")
def follow_chain(
    chain_id: str,
    until: str = UntilOption,
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """Follow a chain stage by stage, with the training run's progress bar, until it is delivered (or
    reaches --until); exit 1 when it fails, is blocked or cancelled first."""

    def command() -> None:
        forge = signed_in(tenant)
        try:
            done = follow(forge.chains, forge.jobs, chain_id, until, json_output)
        except ChainStopped as stopped:
            if json_output:
                print_json(stopped.chain)
            raise
        if json_output:
            print_json(done)
        else:
            _outcome(done)

    run(command)


@app.command("show")
def show(chain_id: str, tenant: str = TenantOption, json_output: bool = JsonOption) -> None:
    """A chain: its workflow's state, every stage entered (when), what it produced, its gate verdict."""

    def command() -> None:
        chain = signed_in(tenant).chains.get(chain_id)
        if json_output:
            print_json(chain)
            return
        status = chain["status"]
        console.print(
            f"chain [bold]{chain['chain_id']}[/]: {stage_of(chain) or '-'} ({chain['workflow_status']})",
            highlight=False,
        )
        if status is not None:
            for mark in status.get("stages") or []:
                console.print(f"  {mark['at'][:19]}  {mark['stage']}", highlight=False)
            produced = (
                ("training job", status.get("training_job_id")),
                ("evaluation", status.get("evaluation_job_id")),
                ("model version", status.get("model_version_id")),
                ("delivery order", status.get("delivery_order_id")),
                ("bundle", status.get("bundle_uri")),
                ("approved by", status.get("approved_by")),
                ("cancelled by", status.get("cancelled_by")),
            )
            for what, value in produced:
                if value:
                    console.print(f"  {what}: {value}", highlight=False)
            if status.get("metrics"):
                console.print(f"  metrics: {metrics_text(status['metrics'])}", highlight=False)
            if status.get("gate_passed") is not None:
                verdict = (
                    "passed" if status["gate_passed"] else "failed " + ", ".join(status["failed_checks"])
                )
                console.print(f"  gate: {verdict}", highlight=False)
            if status.get("error"):
                console.print(f"  [red]error: {status['error']}[/]", highlight=False)
        console.print(f"  Temporal UI: {chain['temporal_ui']}", highlight=False)

    run(command)


@app.command("list")
def list_chains(
    limit: int = typer.Option(50, min=1, help="At most this many, newest first."),
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """Your tenant's chains, newest first (the stage of one: `forge chains show`)."""

    def command() -> None:
        found = []
        for chain in signed_in(tenant).chains.list():
            found.append(chain)
            if len(found) == limit:
                break
        if json_output:
            print_json(found)
            return
        table = Table("id", "workflow", "model", "started by", "started", "closed")
        for chain in found:
            table.add_row(
                chain["chain_id"],
                chain["workflow_status"],
                chain.get("model_name") or "-",
                chain.get("started_by") or "-",
                (chain.get("started_at") or "-")[:19],
                (chain.get("closed_at") or "-")[:19],
            )
        console.print(table)

    run(command)


@app.command("approve")
def approve(
    chain_id: str,
    reason: str = typer.Option(
        ..., help="Why its version may be released although the gate failed (audited)."
    ),
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """Approve the release of a chain awaiting approval (release approvers only; you are the approver)."""

    def command() -> None:
        chain = signed_in(tenant).chains.approve(chain_id, reason)
        if json_output:
            print_json(chain)
            return
        console.print(f"chain {chain_id}: release approved; it goes on to delivery", highlight=False)

    run(command)


@app.command("cancel")
def cancel(
    chain_id: str,
    reason: str = typer.Option(None, help="Why (recorded in its status)."),
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """Cancel a running chain: its training stops and its allocation is given back."""

    def command() -> None:
        chain = signed_in(tenant).chains.cancel(chain_id, reason)
        if json_output:
            print_json(chain)
            return
        console.print(f"chain {chain_id}: cancel requested", highlight=False)

    run(command)
