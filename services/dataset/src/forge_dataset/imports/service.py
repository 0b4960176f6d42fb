"""Use cases of imports: start one (an `import` dataset task) and run it (the task's handler).

A link import fetches each URL through the kit's egress guard (public addresses only, unless an
administrator allowed a network; redirects checked one by one), checks the content type and the
announced size, streams the body into a multipart upload while every part is scanned (JSONL records,
statistics, sha256), checks the expected size and sha256, and copies the file to its content-addressed
key. Once every file is in, the version is published in the transaction that ends the task: a failed
or cancelled import leaves no version, and its staging objects are removed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from forge_contracts.activities.dataset import ManifestFile
from forge_contracts.envelope import uuid7
from forge_kit.auth import Principal
from forge_kit.egress import EgressFailed, EgressRefused, check_url, open_stream
from forge_kit.errors import Unprocessable

from forge_dataset import domain
from forge_dataset.deps import Deps
from forge_dataset.diff.domain import canonical
from forge_dataset.imports.schemas import ImportRequest, LinkFile
from forge_dataset.rows import dataset_row
from forge_dataset.service import create_published_version
from forge_dataset.statistics.domain import FileStats, schema_violations
from forge_dataset.tables import DatasetTask
from forge_dataset.tasks import service as tasks
from forge_dataset.tasks.runner import TaskContext, TaskResult

CONTENT_TYPES = frozenset(
    {
        "application/json",
        "application/jsonl",
        "application/x-jsonlines",
        "application/x-ndjson",
        "application/jsonlines",
        "application/octet-stream",
        "text/plain",
        "binary/octet-stream",
    }
)
"""What a JSONL file may be served as (an HTML page, a login form, is not a dataset)."""


async def start_import(
    deps: Deps, caller: Principal, dataset_id: str, request: ImportRequest
) -> tuple[DatasetTask, bool]:
    """The import task (identical requests share it while it runs or once it succeeded). URLs the
    egress guard refuses, or whose host does not resolve, are a 422 before any task."""
    for file in request.source.files:
        try:
            await check_url(file.url, deps.import_allowed_networks)
        except (EgressRefused, EgressFailed) as error:
            raise Unprocessable(f"{file.name}: {error}") from None
    parameters = request.model_dump(mode="json")
    return await tasks.create_task(
        deps,
        caller,
        dataset_id,
        "import",
        input_version_id=None,
        parameters=parameters,
        request_key=f"import:{dataset_id}:{canonical(parameters).decode()}",
    )


class _Download:
    """Progress of one task's downloads, in bytes."""

    def __init__(self, ctx: TaskContext, files: int) -> None:
        self.ctx, self.files, self.done_files = ctx, files, 0
        self.bytes_done = 0

    async def advance(self, n: int, total: int | None) -> None:
        self.bytes_done += n
        share = (self.bytes_done / total) if total else 0.0
        await self.ctx.report(
            0.95 * (self.done_files + min(share, 1.0)) / self.files,
            phase="downloading",
            bytes_done=self.bytes_done,
            files_done=self.done_files,
            files_total=self.files,
        )


async def _fetch(
    ctx: TaskContext, file: LinkFile, progress: _Download
) -> tuple[ManifestFile, dict[str, Any]]:
    deps, tenant = ctx.deps, ctx.task.tenant
    scanner = domain.JsonlScanner(file.name)
    staging = domain.staging_prefix(tenant, ctx.task.id) + uuid7()
    try:
        async with open_stream(file.url, allowed_networks=deps.import_allowed_networks) as response:
            kind = (
                response.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
            )
            if kind not in CONTENT_TYPES:
                raise Unprocessable(f"{file.name}: {file.url} is served as {kind!r}, not as JSONL")
            announced = response.headers.get("content-length")
            total = int(announced) if announced and announced.isdigit() else None
            if total is not None and file.size_bytes is not None and total != file.size_bytes:
                raise Unprocessable(f"{file.name}: the server announces {total} bytes, not {file.size_bytes}")
            if (total or 0) > deps.import_max_file_bytes:
                raise Unprocessable(f"{file.name}: {total} bytes is more than {deps.import_max_file_bytes}")

            async def body() -> Any:
                async for chunk in response.aiter_bytes(1024 * 1024):
                    if scanner.size_bytes + len(chunk) > deps.import_max_file_bytes:
                        raise Unprocessable(f"{file.name}: larger than {deps.import_max_file_bytes} bytes")
                    yield chunk
                    await progress.advance(len(chunk), total or file.size_bytes)

            async def scan(part: bytes) -> None:
                await asyncio.to_thread(scanner.feed, part)

            async def finish() -> None:
                scanner.finish()
                if file.size_bytes is not None and scanner.size_bytes != file.size_bytes:
                    raise Unprocessable(
                        f"{file.name}: {scanner.size_bytes} bytes arrived, not {file.size_bytes}"
                    )
                if file.sha256 is not None and scanner.sha256 != file.sha256:
                    raise Unprocessable(f"{file.name}: the sha256 is {scanner.sha256}, not {file.sha256}")

            await deps.store.write_stream(staging, body(), on_part=scan, on_end=finish)
    except domain.InvalidRecords as error:
        raise Unprocessable(str(error)) from None
    except EgressRefused as error:
        raise Unprocessable(f"{file.name}: {error}") from None
    key = domain.blob_key(tenant, scanner.sha256)
    try:
        if await deps.store.size(key) != scanner.size_bytes:
            await deps.store.copy(staging, key, scanner.size_bytes)
    finally:
        await deps.store.delete(staging)
    progress.done_files += 1
    manifest_file = ManifestFile(
        name=file.name,
        object_key=key,
        sha256=scanner.sha256,
        size_bytes=scanner.size_bytes,
        record_count=scanner.records,
    )
    return manifest_file, scanner.stats.to_json()


async def run_import(ctx: TaskContext) -> TaskResult:
    """The `import` task's handler."""
    task, caller = ctx.task, ctx.caller
    request = ImportRequest.model_validate(task.parameters)
    progress = _Download(ctx, len(request.source.files))
    fetched = []
    for file in request.source.files:
        try:
            fetched.append(await _fetch(ctx, file, progress))
        except EgressFailed as error:
            if error.status is not None and 400 <= error.status < 500 and error.status not in (408, 429):
                raise Unprocessable(f"{file.name}: {error}") from None
            raise RuntimeError(f"{file.name}: {error}") from None  # retried: the server may come back
    outputs = [f for f, _ in fetched]
    await ctx.report(0.97, phase="publishing", force=True)
    content = domain.manifest(outputs)
    digest = domain.sha256_hex(content)
    await ctx.deps.store.put(domain.manifest_key(task.tenant, digest), content)
    stats = {"files": len(outputs), "records": sum(f.record_count for f in outputs)}
    stats["bytes"] = sum(f.size_bytes for f in outputs)
    async with ctx.deps.db.session() as session:
        hint = (await dataset_row(session, caller, task.dataset_id)).schema_hint
    merged = FileStats()
    for _, file_stats in fetched:
        merged.merge(FileStats.from_json(file_stats))
    if hint and (problems := schema_violations(hint, merged)):
        raise Unprocessable("the records do not match the schema hint: " + "; ".join(problems))
    async with ctx.deps.db.transaction() as session:
        owner = await dataset_row(session, caller, task.dataset_id, lock=True)
        output = await create_published_version(
            session,
            ctx.deps.store,
            owner,
            outputs,
            digest,
            caller.actor,
            parent_version_id=None,
            operation="import",
            parameters=task.parameters,
            stats={f.name: s for f, s in fetched},
            source=request.source.type,
        )
        await tasks.succeed(
            ctx.deps,
            task.tenant,
            task.id,
            stats=stats,
            result={"source": request.source.type},
            output_version_id=output.id,
            session=session,
        )
    return TaskResult(ended=True)
