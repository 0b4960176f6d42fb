"""Use cases of conversion: start one (a `convert` dataset task) and run it (the task's handler).

The handler streams each JSONL or CSV record file of the source version from the bucket (as records,
forge_dataset.records) into a local Parquet file a row group at a time, scans the result like an upload
(sha256, records, statistics), checks that every record arrived, and stores it at its content-addressed
key under the same name with `.parquet`. Parquet files and media blobs are carried over as they are (the
same objects). The new version is published with lineage to the source in the transaction that ends the
task; a failed conversion leaves no version. Memory: one chunk and one row group.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from forge_contracts.activities.dataset import ManifestFile
from forge_kit.auth import Principal
from forge_kit.errors import Unprocessable

from forge_dataset import domain, formats, records
from forge_dataset.convert.domain import ConvertError, ParquetSink, parquet_name
from forge_dataset.convert.schemas import ConvertRequest
from forge_dataset.deps import Deps
from forge_dataset.diff.domain import canonical
from forge_dataset.service import published_source
from forge_dataset.split.domain import SplitError
from forge_dataset.statistics.domain import FileStats
from forge_dataset.statistics.service import task_source_stats
from forge_dataset.tables import DatasetTask, VersionFile
from forge_dataset.tasks import service as tasks
from forge_dataset.tasks.outputs import publish_output
from forge_dataset.tasks.runner import TaskContext, TaskResult

CONVERTED = ("jsonl", "csv")
"""The record formats a conversion rewrites (Parquet is kept as it is)."""


async def start_convert(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str, request: ConvertRequest
) -> tuple[DatasetTask, bool]:
    """The convert task of a published version (an identical request's while it runs or once done)."""
    await published_source(deps, caller, dataset_id, version_id, doing="can be converted")
    parameters = request.model_dump(mode="json")
    return await tasks.create_task(
        deps,
        caller,
        dataset_id,
        "convert",
        input_version_id=version_id,
        parameters=parameters,
        request_key=f"convert:{version_id}:{canonical(parameters).decode()}",
    )


def _kept(file: VersionFile) -> ManifestFile:
    return ManifestFile.model_validate(file, from_attributes=True)


def _output_names(files: list[VersionFile]) -> dict[str, str]:
    """Each file's name in the output; two files that would get one name are a 422."""
    names: dict[str, str] = {}
    for file in files:
        names[file.name] = parquet_name(file.name) if file.format in CONVERTED else file.name
    seen: dict[str, str] = {}
    for source, output in names.items():
        if output in seen:
            raise Unprocessable(f"{seen[output]} and {source} would both become {output}; rename one first")
        seen[output] = source
    return names


async def _convert_file(
    ctx: TaskContext,
    file: VersionFile,
    stats: FileStats,
    request: ConvertRequest,
    work: Path,
    progress: Progress,
) -> tuple[ManifestFile, FileStats]:
    deps, name = ctx.deps, parquet_name(file.name)
    path = work / f"{file.sha256}.parquet"  # one file at a time, removed once stored
    try:
        sink = ParquetSink(path, stats, request.compression, request.row_group_rows)

        async def advance(n: int) -> None:
            await progress.advance(file, n)

        try:
            await records.each_lines(deps.store, file, deps.work_dir, sink.add, advance)
        finally:
            await asyncio.to_thread(sink.close)
    except (ConvertError, SplitError, ValueError) as error:
        raise Unprocessable(f"{file.name} cannot be written as Parquet: {error}") from None
    if sink.rows != file.record_count:
        raise Unprocessable(f"{file.name}: {sink.rows} records were written, not {file.record_count}")
    scanner = formats.scanner_for(name, deps.work_dir)
    with path.open("rb") as written:
        while chunk := await asyncio.to_thread(written.read, 8 * 1024 * 1024):
            await asyncio.to_thread(scanner.feed, chunk)
    await asyncio.to_thread(scanner.finish)
    key = domain.blob_key(ctx.task.tenant, scanner.sha256)
    if await deps.store.size(key) != scanner.size_bytes:
        await deps.store.put_file(key, path)
    path.unlink()
    return formats.manifest_file(scanner, key, name), scanner.stats


class Progress:
    """Bytes of the record files read, of all of them."""

    def __init__(self, ctx: TaskContext, total: int) -> None:
        self.ctx, self.total, self.done = ctx, max(total, 1), 0

    async def advance(self, file: VersionFile, n: int) -> None:
        self.done += n
        await self.ctx.report(
            0.95 * min(self.done / self.total, 1.0),
            phase="converting",
            file=file.name,
            bytes_done=self.done,
            bytes_total=self.total,
        )


async def run_convert(ctx: TaskContext) -> TaskResult:
    """The `convert` task's handler."""
    caller, task = ctx.caller, ctx.task
    request = ConvertRequest.model_validate(task.parameters)
    source, per_file, _ = await task_source_stats(
        ctx.deps, caller, task.dataset_id, task.input_version_id or ""
    )
    names = _output_names([f for f, _ in per_file])
    todo = [(f, s) for f, s in per_file if f.format in CONVERTED]
    if not todo:
        raise Unprocessable("the version has no JSONL or CSV record files to convert")
    progress = Progress(ctx, sum(f.size_bytes for f, _ in todo))
    outputs: list[ManifestFile] = []
    stats_by_file: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix=f"convert-{task.id}-", dir=ctx.deps.work_dir) as work:
        for file, stats in per_file:
            if file.format not in CONVERTED:
                outputs.append(_kept(file))
                if file.stats is not None:
                    stats_by_file[file.name] = file.stats
                continue
            converted, converted_stats = await _convert_file(ctx, file, stats, request, Path(work), progress)
            outputs.append(converted)
            stats_by_file[converted.name] = converted_stats.to_json()
    outputs.sort(key=lambda f: f.name)
    assert [f.name for f in outputs] == sorted(names.values())
    converted_names = {parquet_name(f.name) for f, _ in todo}
    return await publish_output(
        ctx,
        outputs,
        operation="convert",
        parent_version_id=source.id,
        stats_by_file=stats_by_file,
        totals={
            "files_converted": len(todo),
            "records": sum(f.record_count for f in outputs if f.name in converted_names),
            "bytes_in": sum(f.size_bytes for f, _ in todo),
            "bytes_out": sum(f.size_bytes for f in outputs if f.name in converted_names),
        },
        result={"format": request.format, "files": {f.name: parquet_name(f.name) for f, _ in todo}},
    )
