"""Use cases of processing: start a pipeline over a version (a `process` task, scheduled) and run it (the
task's handler), and page through what a run dropped.

The handler never runs an operator itself: it hands the data runtime (`python -m forge_data_runtime
process`, its own process, driving an embedded Ray sized to the scheduler's allocation or the configured
Ray cluster) a spec with pre-signed links to the record files, relays the runtime's progress to the
task, then scans and stores the kept records (one JSONL file per source record file) and publishes them
as a new version in the transaction that ends the task, with lineage to the source and the pipeline as
the operation's parameters. What was dropped (every record, with operator and reason) is stored with the
task; counts, samples and duplicate clusters go into the task's result. A run that fails leaves no
version, and the source is never written to.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from forge_contracts.activities.dataset import ManifestFile
from forge_contracts.features import FeaturesSpec
from forge_contracts.processing import InputFile, MediaInput, Pipeline, ProcessSpec, RaySettings, fields_named
from forge_contracts.registered import ModelFiles, RegisteredModel
from forge_kit.auth import Principal
from forge_kit.errors import Conflict, NotFound, Unprocessable
from forge_kit.objects import check_tenant_area
from forge_kit.runtime_process import RuntimeRun, run_runtime

from forge_dataset import domain, formats
from forge_dataset.deps import Deps
from forge_dataset.diff.domain import canonical
from forge_dataset.processing.schemas import (
    DroppedPage,
    DroppedRecord,
    LineageQuery,
    ProcessRequest,
    ProcessResources,
    RecordLineage,
    RecordLineagePage,
)
from forge_dataset.service import published_source
from forge_dataset.statistics.domain import FileStats
from forge_dataset.statistics.service import task_source_stats, version_stats
from forge_dataset.tables import DatasetTask, VersionFile
from forge_dataset.tasks import service as tasks
from forge_dataset.tasks.outputs import publish_output
from forge_dataset.tasks.runner import TaskContext, TaskResult

RUNTIME_MODULE = "forge_data_runtime"
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")
"""What the runtime inherits from the service's environment: enough to find Python and write files,
never the service's settings or credentials (it reads through pre-signed links)."""
PROCESSED = ("jsonl", "csv", "parquet")
"""Record formats a pipeline reads (each written back as JSONL)."""
TOTALS = (
    "records_in",
    "records_out",
    "records_dropped",
    "records_added",
    "records_changed",
    "media_files_added",
)


def output_name(name: str) -> str:
    """`train.jsonl` stays; `rows.csv` and `t.parquet` become `rows.jsonl` and `t.jsonl`."""
    stem, dot, suffix = name.rpartition(".")
    return name if suffix == "jsonl" or not dot else f"{stem}.jsonl"


def dropped_key(tenant: str, task_id: str) -> str:
    return f"tenants/{tenant}/tasks/{task_id}/dropped.jsonl"


def lineage_key(tenant: str, task_id: str) -> str:
    return f"tenants/{tenant}/tasks/{task_id}/lineage.jsonl"


def check_fields(per_file: list[tuple[VersionFile, FileStats]], named: list[tuple[str, list[str]]]) -> None:
    """A 422 when a step (`named`: what it is called, the fields it reads) names a field no record of the
    version has (unless there are too many fields to track)."""
    known: set[str] = set()
    for _, stats in per_file:
        if stats.other_fields:
            return
        known.update(stats.fields)
    if not known:
        return
    for what, fields in named:
        for name in fields:
            if name not in known:
                raise Unprocessable(
                    f"{what} reads field {name!r}, which no record of the version has "
                    f"(its fields: {', '.join(sorted(known)[:30])})"
                )


def output_names(files: list[VersionFile]) -> None:
    """A 422 when two files of the version would get one name in the output."""
    seen: dict[str, str] = {}
    for file in files:
        name = output_name(file.name) if file.format in PROCESSED else file.name
        if name in seen:
            raise Unprocessable(f"{seen[name]} and {file.name} would both become {name}; rename one first")
        seen[name] = file.name


async def start_process(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str, request: ProcessRequest
) -> tuple[DatasetTask, bool]:
    """The process task of a published version (an identical request's while it runs or once done)."""
    await published_source(deps, caller, dataset_id, version_id, doing="can be processed")
    _, per_file, _ = await version_stats(deps, caller, dataset_id, version_id)
    if not any(f.format in PROCESSED for f, _ in per_file):
        raise Unprocessable("the version has no record files (JSONL, CSV or Parquet) to process")
    output_names([f for f, _ in per_file])
    check_fields(
        per_file, [(f"op {n} ({op.op})", fields_named(op)) for n, op in enumerate(request.ops, start=1)]
    )
    parameters = request.model_dump(mode="json")
    return await tasks.create_task(
        deps,
        caller,
        dataset_id,
        "process",
        input_version_id=version_id,
        parameters=parameters,
        request_key=f"process:{version_id}:{canonical(parameters).decode()}",
    )


class Relay:
    """The runtime's events onto the task: progress with its phase and counts, the last log line."""

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.message = "starting the data runtime"

    async def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "log":
            self.message = str(event.get("message", ""))[:500]
            await self.ctx.report(0.01, phase="starting", message=self.message)
        elif kind == "progress":
            detail = {k: v for k, v in event.items() if k not in ("kind", "progress")}
            await self.ctx.report(float(event.get("progress", 0.0)), **detail)


async def store_output(ctx: TaskContext, path: Path, name: str) -> tuple[ManifestFile, dict[str, Any]]:
    """A file the runtime wrote, checked as its kind (records parsed, media by signature) and stored."""
    deps = ctx.deps
    scanner = (
        formats.JsonlScanner(name)
        if name.endswith(".jsonl")
        else formats.BlobScanner(name, formats.media_kind(name))
    )
    with path.open("rb") as written:
        while chunk := await asyncio.to_thread(written.read, 8 * 1024 * 1024):
            await asyncio.to_thread(scanner.feed, chunk)
    if isinstance(scanner, formats.JsonlScanner):
        await asyncio.to_thread(scanner.finish_allowing_empty)
    else:
        await asyncio.to_thread(scanner.finish)
    key = domain.blob_key(ctx.task.tenant, scanner.sha256)
    if await deps.store.size(key) != scanner.size_bytes:
        await deps.store.put_file(key, path)
    return formats.manifest_file(scanner, key, name), scanner.stats.to_json()


def runtime_env() -> dict[str, str]:
    return {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}


async def record_inputs(deps: Deps, files: list[VersionFile]) -> list[InputFile]:
    """The version's record files as the runtime reads them: through pre-signed links."""
    records = [f for f in files if f.format in PROCESSED]
    urls = await deps.store.presign_get([f.object_key for f in records], deps.processing_link_ttl_s)
    return [
        InputFile(
            name=f.name,
            format=f.format,  # type: ignore[arg-type]
            url=url,
            size_bytes=f.size_bytes,
            records=f.record_count,
        )
        for f, url in zip(records, urls, strict=True)
    ]


MAX_MODEL_FILES = 1000


async def model_files(
    deps: Deps, tenant: str, named: list[RegisteredModel], resolved: dict[str, str]
) -> dict[str, ModelFiles]:
    """The registry's models a task names, as its workflow resolved them (`resolved`: key -> location),
    each as pre-signed links to its files; one not resolved is a conflict, a location outside the tenant's
    model areas is refused (the service reads it with its own rights)."""
    missing = [m for m in named if m.key not in resolved]
    if missing:
        raise Conflict(f"{missing[0]} was not resolved for this run")
    found: dict[str, ModelFiles] = {}
    for key, uri in resolved.items():
        check_tenant_area(uri, tenant, deps.model_areas, what=key)
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        keys = await deps.store.list_prefix(bucket, prefix, MAX_MODEL_FILES)
        if not keys:
            raise Unprocessable(f"{key}: no files at {uri}")
        urls = await deps.store.presign_get(keys, deps.processing_link_ttl_s, bucket=bucket)
        found[key] = ModelFiles(
            files={k.removeprefix(prefix): url for k, url in zip(keys, urls, strict=True)}
        )
    return found


async def media_inputs(deps: Deps, files: list[VersionFile], modalities: set[str]) -> dict[str, MediaInput]:
    """The version's media files of `modalities` (image, audio, video), through pre-signed links."""
    media = [
        f for f in files if f.format is None and f.media_type and f.media_type.split("/", 1)[0] in modalities
    ]
    urls = await deps.store.presign_get([f.object_key for f in media], deps.processing_link_ttl_s)
    return {
        f.name: MediaInput(url=url, media_type=f.media_type or "", size_bytes=f.size_bytes)
        for f, url in zip(media, urls, strict=True)
    }


def outcome(run: RuntimeRun) -> dict[str, Any]:
    """The runtime's result; its own failure (a rule, the records) is a 422 the task fails with at once,
    anything else an error the task's retries may get past."""
    if run.succeeded and run.result is not None:
        return run.result
    message = str((run.error or {}).get("message") or "")
    if run.error is not None and run.error.get("user"):
        raise Unprocessable(message)
    raise RuntimeError(
        f"the data runtime failed (exit {run.exit_code}): {message or run.stderr_tail[-1500:]}"
    )


def ray_settings(deps: Deps, resources: ProcessResources, temp_dir: str) -> RaySettings:
    """Ray for a run on an allocation of `resources`: the configured cluster, or an embedded Ray with the
    allocated cores and a quarter of its memory as object store."""
    return RaySettings(
        address=deps.ray_address,
        num_cpus=resources.cpu_cores,
        object_store_bytes=max(resources.memory_bytes // 4, 80 * 1024**2),
        temp_dir=temp_dir,
    )


async def store_outputs(
    ctx: TaskContext, files: list[VersionFile], written: Path
) -> tuple[list[ManifestFile], dict[str, dict[str, Any]]]:
    """The output version's files: each record file as the runtime wrote it under `written`/records
    (scanned, stored), every other file (media) carried over as it is, the media files the run made
    (under `written`/media); and their statistics by name."""
    outputs: list[ManifestFile] = []
    stats_by_file: dict[str, dict[str, Any]] = {}
    for file in files:
        if file.format in PROCESSED:
            name = output_name(file.name)
            stored, stats = await store_output(ctx, written / "records" / name, name)
            outputs.append(stored)
            stats_by_file[name] = stats
        else:
            outputs.append(ManifestFile.model_validate(file, from_attributes=True))
            if file.stats is not None:
                stats_by_file[file.name] = file.stats
    taken = {f.name for f in outputs}
    made = written / "media"
    for path in sorted(made.rglob("*")) if made.is_dir() else []:
        if path.is_file():
            name = path.relative_to(made).as_posix()
            if name in taken:
                raise Conflict(f"an augmented copy would replace {name}, a file of the version")
            stored, _ = await store_output(ctx, path, name)
            outputs.append(stored)
    outputs.sort(key=lambda f: f.name)
    return outputs, stats_by_file


@contextlib.contextmanager
def runtime_dirs(ctx: TaskContext, command: str) -> Iterator[tuple[Path, str]]:
    """The run's work folder and Ray's (short: it holds Unix sockets), removed after."""
    with (
        tempfile.TemporaryDirectory(prefix=f"{command}-{ctx.task.id}-", dir=ctx.deps.work_dir) as work,
        tempfile.TemporaryDirectory(prefix="forge-ray-", dir="/tmp") as ray_dir,
    ):
        yield Path(work), ray_dir


async def run_and_store(
    ctx: TaskContext, command: str, spec: ProcessSpec | FeaturesSpec, files: list[VersionFile]
) -> tuple[dict[str, Any], list[ManifestFile], dict[str, dict[str, Any]]]:
    """Run the data runtime's `command` on `spec` (its events relayed onto the task), then store what it
    wrote: its report, the output version's files and their statistics."""
    relay = Relay(ctx)
    await ctx.report(0.0, phase="starting", message=relay.message, force=True)
    work = Path(spec.work_dir)
    run = await run_runtime(
        RUNTIME_MODULE, command, spec.model_dump(mode="json"), work, on_event=relay, env=runtime_env()
    )
    report = outcome(run)
    await ctx.report(0.93, phase="storing", force=True)
    outputs, stats_by_file = await store_outputs(ctx, files, Path(spec.output_dir))
    return report, outputs, stats_by_file


async def run_process(ctx: TaskContext) -> TaskResult:
    """The `process` task's handler."""
    deps, caller, task = ctx.deps, ctx.caller, ctx.task
    request = ProcessRequest.model_validate(task.parameters)
    source, per_file, _ = await task_source_stats(deps, caller, task.dataset_id, task.input_version_id or "")
    files = [f for f, _ in per_file]
    pipeline = Pipeline(ops=request.ops, seed=request.seed)
    inputs = await record_inputs(deps, files)
    media = await media_inputs(deps, files, pipeline.media_modalities) if pipeline.media_modalities else {}
    models = await model_files(deps, task.tenant, pipeline.models, ctx.models)
    with runtime_dirs(ctx, "process") as (work, ray_dir):
        spec = ProcessSpec(
            pipeline=pipeline,
            inputs=inputs,
            media=media,
            models=models,
            output_dir=str(work / "out"),
            work_dir=str(work),
            ray=ray_settings(deps, request.resources, ray_dir),
            shard_bytes=deps.processing_shard_bytes,
        )
        report, outputs, stats_by_file = await run_and_store(ctx, "process", spec, files)
        out = work / "out"
        await deps.store.put_file(dropped_key(task.tenant, task.id), out / "dropped.jsonl")
        await deps.store.put_file(lineage_key(task.tenant, task.id), out / "lineage.jsonl")
    totals = {k: int(report[k]) for k in TOTALS}
    return await publish_output(
        ctx,
        outputs,
        operation="process",
        parent_version_id=source.id,
        stats_by_file=stats_by_file,
        totals=totals,
        result={k: report[k] for k in ("files", "ops", "clusters")},
    )


async def _finished_process(
    deps: Deps, caller: Principal, dataset_id: str, task_id: str, what: str
) -> DatasetTask:
    found = await tasks.task(deps, caller, dataset_id, task_id)
    if found.kind != "process":
        raise NotFound(f"task {task_id!r} is a {found.kind} task: it has no {what}")
    if found.state != "succeeded":
        raise Conflict(f"task {task_id!r} is {found.state!r}: its {what} is known once it succeeded")
    return found


async def _lines(
    deps: Deps, key: str, keep: Callable[[dict[str, Any]], bool], offset: int, limit: int, total: int | None
) -> tuple[list[dict[str, Any]], int]:
    """Lines of a stored JSONL file that `keep` accepts, from the `offset`-th such: up to `limit` of them,
    and how many there are (read to the end unless `total` is known)."""
    items: list[dict[str, Any]] = []
    seen = 0
    buffer = b""
    async with contextlib.aclosing(deps.store.read(key)) as chunks:
        async for chunk in chunks:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if not line:
                    continue
                entry = orjson.loads(line)
                if not keep(entry):
                    continue
                if seen >= offset and len(items) < limit:
                    items.append(entry)
                seen += 1
                if total is not None and len(items) >= limit:
                    return items, total
    return items, seen if total is None else total


def _page(items: list[Any], offset: int, total: int) -> int | None:
    end = offset + len(items)
    return end if end < total else None


async def dropped(
    deps: Deps, caller: Principal, dataset_id: str, task_id: str, *, op: int | None, offset: int, limit: int
) -> DroppedPage:
    """A page of the records a finished `process` task dropped, in source order (`op`: one operator's)."""
    found = await _finished_process(deps, caller, dataset_id, task_id, "dropped records")
    ops = found.result.get("ops", [])
    if op is not None and not 1 <= op <= len(ops):
        raise Unprocessable(f"op must be between 1 and {len(ops)}")
    total = int(ops[op - 1]["dropped"]) if op is not None else int(found.stats.get("records_dropped", 0))
    entries, _ = await _lines(
        deps,
        dropped_key(found.tenant, found.id),
        lambda entry: op is None or entry["op"] == op,
        offset,
        limit,
        total,
    )
    items = [DroppedRecord.model_validate(e) for e in entries]
    return DroppedPage(items=items, total=total, next_offset=_page(items, offset, total))


async def lineage(
    deps: Deps,
    caller: Principal,
    dataset_id: str,
    task_id: str,
    query: LineageQuery,
    *,
    offset: int,
    limit: int,
) -> RecordLineagePage:
    """Where the output records of a finished `process` task came from (or, asked by source record, what
    became of it), in output order."""
    found = await _finished_process(deps, caller, dataset_id, task_id, "record lineage")

    def keep(entry: dict[str, Any]) -> bool:
        source = entry["source"]
        return (
            (query.file is None or entry["file"] == query.file)
            and (query.record is None or entry["record"] == query.record)
            and (query.source_file is None or source["file"] == query.source_file)
            and (query.source_record is None or source["record"] == query.source_record)
            and (query.augmented is None or bool(entry["augmentations"]) == query.augmented)
        )

    unfiltered = query == LineageQuery()
    entries, total = await _lines(
        deps,
        lineage_key(found.tenant, found.id),
        keep,
        offset,
        limit,
        int(found.stats.get("records_out", 0)) if unfiltered else None,
    )
    items = [RecordLineage.model_validate(e) for e in entries]
    return RecordLineagePage(items=items, total=total, next_offset=_page(items, offset, total))
