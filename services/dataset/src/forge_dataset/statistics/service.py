"""The statistics of a version: its files' scan statistics merged (files uploaded before statistics
existed are scanned now, once, and their statistics kept)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from forge_kit.auth import Principal
from forge_kit.errors import Conflict

from forge_dataset import domain
from forge_dataset.deps import Deps
from forge_dataset.rows import readable_version, version_files
from forge_dataset.service import READABLE
from forge_dataset.statistics.domain import FileStats
from forge_dataset.tables import DatasetVersion, VersionFile


async def _scanned(deps: Deps, file: VersionFile) -> dict[str, Any]:
    scanner = domain.JsonlScanner(file.name)
    async with contextlib.aclosing(deps.store.read(file.object_key)) as chunks:
        async for chunk in chunks:
            await asyncio.to_thread(scanner.feed, chunk)
    scanner.finish_allowing_empty()
    return scanner.stats.to_json()


async def version_stats(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str
) -> tuple[DatasetVersion, list[tuple[VersionFile, FileStats]], FileStats]:
    """The version, each file with its statistics, and the version's (all files merged)."""
    async with deps.db.session() as session:
        _, found = await readable_version(session, caller, dataset_id, version_id)
        files = await version_files(session, version_id)
    missing = {f.name: await _scanned(deps, f) for f in files if f.stats is None and f.format == "jsonl"}
    if missing:
        async with deps.db.transaction() as session:
            for file in files:
                if file.name in missing:
                    file.stats = missing[file.name]
                    session.add(await session.merge(file))
    # Media and other blobs hold no records: empty statistics.
    per_file = [
        (f, FileStats.from_json(f.stats or missing.get(f.name) or FileStats().to_json())) for f in files
    ]
    merged = FileStats()
    for _, stats in per_file:
        merged.merge(stats)
    return found, per_file, merged


async def task_source_stats(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str
) -> tuple[DatasetVersion, list[tuple[VersionFile, FileStats]], FileStats]:
    """`version_stats` of the version a task reads, when the task runs: 409 unless it is still readable
    (published or deprecated)."""
    source, per_file, merged = await version_stats(deps, caller, dataset_id, version_id)
    if source.state not in READABLE:
        raise Conflict(f"version {source.id!r} is {source.state!r}, not published")
    return source, per_file, merged
