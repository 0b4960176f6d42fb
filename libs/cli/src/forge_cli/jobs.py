"""`forge jobs`: submit LoRA fine-tuning jobs from a JSON or YAML config, list them, show one, follow its
logs with a progress bar (step/total, loss, the service's ETA), read its metrics, cancel it; as the
signed-in user (`forge login`). Exit codes as in forge_cli.userapi (1: the followed job failed or was
cancelled)."""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType

import typer
from forge_sdk.jobs import JOB_ENDED, JobFailed, Jobs, LogLine, TrainingJob
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from forge_cli.userapi import JsonOption, TenantOption, console, print_json, read_document, run, signed_in

app = typer.Typer(
    help="Training jobs: submit from a config, follow logs and progress, metrics, cancel.",
    no_args_is_help=True,
)
ConfigArgument = typer.Argument(
    ...,
    exists=True,
    dir_okay=False,
    readable=True,
    help="The job as JSON or YAML: name, project_id, base_model.id, dataset (dataset_id, version_id, "
    "train_file), hyperparameters, lora, resources, scheduler_project_id (docs/training.md).",
)
FollowOption = typer.Option(False, "--follow", "-f", help="Follow it to its end with a progress bar.")


def _jobs(tenant: str | None) -> Jobs:
    return signed_in(tenant).jobs


def duration(seconds: float | None) -> str:
    """`1:05` for 65 s; `-` when unknown."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    return (
        f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
        if whole >= 3600
        else f"{whole // 60}:{whole % 60:02d}"
    )


def _info(job: TrainingJob) -> str:
    """The loss and the service's ETA, for the progress bar."""
    parts = []
    loss = (job.get("latest_metrics") or {}).get("train_loss")
    if isinstance(loss, int | float):
        parts.append(f"loss {loss:.3f}")
    if job["state"] not in JOB_ENDED:
        parts.append(f"ETA {duration(job['progress'].get('eta_s'))}")
    return "  ".join(parts)


class JobBar:
    """A training job's progress bar: its state, step/total steps, the latest loss and the service's ETA;
    log lines print above it."""

    def __init__(self, label: str = "training") -> None:
        self.progress = Progress(
            TextColumn(f"{label} [dim]{{task.fields[state]}}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
        )
        self.shown: TaskID | None = None

    def start(self) -> JobBar:
        self.progress.start()
        return self

    def stop(self) -> None:
        self.progress.stop()

    def __enter__(self) -> JobBar:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def update(self, job: TrainingJob) -> None:
        progress = job["progress"]
        total = progress.get("total_steps") or None
        if self.shown is None:
            self.shown = self.progress.add_task("job", total=total, state=job["state"], info="")
        self.progress.update(
            self.shown, completed=progress.get("step") or 0, total=total, state=job["state"], info=_info(job)
        )

    def log(self, line: LogLine) -> None:
        self.progress.console.print(log_text(line), markup=False, highlight=False, soft_wrap=True)


def log_text(line: LogLine) -> str:
    """`12:03:04 INFO  step 4/20 loss 2.31`."""
    at = line["logged_at"]
    clock = at[11:19] if len(at) >= 19 else at
    return f"{clock} {line['level'].upper():<5} {line['message']}"


def follow(jobs: Jobs, job_id: str, *, logs: bool, json_output: bool, tail: int = 200) -> TrainingJob:
    """Follow a job to its end: a progress bar (and its log lines above it), or with `json_output` one JSON
    object per log line and no bar. JobFailed unless it succeeded."""
    if json_output:
        return jobs.follow(
            job_id, on_log=(lambda line: print(json.dumps(line), flush=True)) if logs else None, tail=tail
        )
    with JobBar() as bar:
        try:
            return jobs.follow(job_id, on_progress=bar.update, on_log=bar.log if logs else None, tail=tail)
        except JobFailed as failed:
            bar.update(failed.job)
            raise


def _summary(job: TrainingJob) -> None:
    progress = job["progress"]
    steps = f"step {progress['step']}/{progress.get('total_steps') or '?'}"
    console.print(f"job [bold]{job['id']}[/] {job['name']}: {job['state']}, {steps}", highlight=False)


@app.command("list")
def list_jobs(
    state: str = typer.Option(None, help="Only jobs in this state (running, succeeded, failed...)."),
    limit: int = typer.Option(50, min=1, max=500, help="At most this many, newest first."),
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """Your tenant's training jobs, newest first."""

    def command() -> None:
        found = []
        for job in _jobs(tenant).list(state=state, page_size=limit):
            found.append(job)
            if len(found) == limit:
                break
        if json_output:
            print_json(found)
            return
        table = Table("id", "name", "state", "step", "loss", "created", "by")
        for job in found:
            loss = (job.get("latest_metrics") or {}).get("train_loss")
            table.add_row(
                job["id"],
                job["name"],
                job["state"],
                f"{job['progress']['step']}/{job['progress'].get('total_steps') or '?'}",
                f"{loss:.3f}" if isinstance(loss, int | float) else "-",
                job["created_at"][:19],
                job.get("created_by") or "-",
            )
        console.print(table)

    run(command)


@app.command("show")
def show(job_id: str, tenant: str = TenantOption, json_output: bool = JsonOption) -> None:
    """A job: state, progress, latest metrics, outputs and error."""

    def command() -> None:
        job = _jobs(tenant).get(job_id)
        if json_output:
            print_json(job)
            return
        _summary(job)
        progress = job["progress"]
        if job["state"] not in JOB_ENDED and progress.get("eta_s") is not None:
            console.print(f"  ETA {duration(progress['eta_s'])}")
        console.print(
            f"  base model {job.get('base_model_id') or '-'}; dataset {job.get('dataset_id') or '-'} "
            f"version {job['dataset_version_id']}",
            highlight=False,
        )
        metrics = job.get("latest_metrics") or {}
        if metrics:
            shown = ", ".join(
                f"{name} {value:.4g}" if isinstance(value, int | float) else f"{name} {value}"
                for name, value in sorted(metrics.items())
            )
            console.print(f"  metrics: {shown}", highlight=False)
        outputs = job["outputs"]
        if outputs.get("model_uri"):
            console.print(
                f"  model {outputs['model_uri']}; adapter {outputs.get('adapter_uri')}", highlight=False
            )
        if job.get("error"):
            console.print(f"  [red]error: {job['error']}[/]", highlight=False)

    run(command)


@app.command("submit")
def submit(
    config: Path = ConfigArgument,
    follow_it: bool = FollowOption,
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """Submit a training job from a JSON or YAML config; prints its id (and, with --follow, follows it)."""

    def command() -> None:
        body = read_document(config)
        jobs = _jobs(tenant)
        job = jobs.create(body)
        if json_output and not follow_it:
            print_json(job)
        elif not follow_it:
            console.print(job["id"])
        elif json_output:
            print_json(follow(jobs, job["id"], logs=False, json_output=True))
        else:
            console.print(f"job [bold]{job['id']}[/] submitted", highlight=False)
            _summary(follow(jobs, job["id"], logs=False, json_output=False))

    run(command)


@app.command("cancel")
def cancel(
    job_id: str,
    reason: str = typer.Option(None, help="Why (recorded with the job)."),
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """Cancel a job: its run is stopped and it ends `cancelled` (exit 3 with a 409 when it already ended)."""

    def command() -> None:
        job = _jobs(tenant).cancel(job_id, reason)
        if json_output:
            print_json(job)
            return
        console.print(f"job {job_id}: cancel requested ({job['state']})", highlight=False)

    run(command)


@app.command("logs")
def logs(
    job_id: str,
    follow_it: bool = FollowOption,
    tail: int = typer.Option(200, min=1, max=5000, help="Show the last this many lines first."),
    tenant: str = TenantOption,
    json_output: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """A job's log lines; with --follow, new lines as they come with a progress bar, until the job ends
    (exit 1 when it failed or was cancelled)."""

    def command() -> None:
        jobs = _jobs(tenant)
        if follow_it:
            done = follow(jobs, job_id, logs=True, json_output=json_output, tail=tail)
            if not json_output:
                _summary(done)
            return
        for line in jobs.logs(job_id, tail=tail)["lines"]:
            if json_output:
                print(json.dumps(line))
            else:
                console.print(log_text(line), markup=False, highlight=False, soft_wrap=True)

    run(command)


@app.command("metrics")
def metrics(
    job_id: str,
    name: str = typer.Option(None, help="Only this metric (train_loss, learning_rate, eval_loss...)."),
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """A job's metric series by step: first, last and best value of each."""

    def command() -> None:
        series = _jobs(tenant).metrics(job_id, name)
        if json_output:
            print_json(series)
            return
        table = Table("metric", "points", "first", "last", "min", "max")
        for one in series:
            values = [(p["step"], p["value"]) for p in one["points"] if p["value"] is not None]
            if not values:
                table.add_row(one["name"], "0", "-", "-", "-", "-")
                continue
            numbers = [v for _, v in values]
            table.add_row(
                one["name"],
                str(len(one["points"])),
                f"{values[0][1]:.4g} @{values[0][0]}",
                f"{values[-1][1]:.4g} @{values[-1][0]}",
                f"{min(numbers):.4g}",
                f"{max(numbers):.4g}",
            )
        console.print(table)

    run(command)
