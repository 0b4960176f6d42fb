"""A record file's records as JSONL bytes, whatever its format: what diffs, splits and previews read.

JSONL is passed through as stored; CSV rows are parsed as they stream and re-encoded one object per
line; Parquet is spooled to a local file (its footer comes last) and read a batch of rows at a time.
Blobs (media) hold no records and yield nothing. Memory stays bounded by a chunk or a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson

from forge_dataset.domain import InvalidRecords
from forge_dataset.formats import CsvScanner, json_value
from forge_dataset.objects import ObjectStore
from forge_dataset.split.domain import Lines
from forge_dataset.tables import VersionFile

BATCH_ROWS = 4096


def _lines(records: list[dict[str, object]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


async def jsonl_chunks(store: ObjectStore, file: VersionFile, work_dir: Path | None) -> AsyncIterator[bytes]:
    """The file's records as JSONL, in chunks that end at a line end (except, for JSONL, as stored)."""
    if file.format == "jsonl":
        async with contextlib.aclosing(store.read(file.object_key)) as chunks:
            async for chunk in chunks:
                yield chunk
        return
    if file.format == "csv":
        rows: list[dict[str, str]] = []
        scanner = CsvScanner(file.name, sink=rows)
        async with contextlib.aclosing(store.read(file.object_key)) as chunks:
            async for chunk in chunks:
                await asyncio.to_thread(scanner.feed, chunk)
                if rows:
                    yield _lines(list(rows))  # type: ignore[arg-type]
                    rows.clear()
        scanner.finish()
        if rows:
            yield _lines(list(rows))  # type: ignore[arg-type]
        return
    if file.format == "parquet":
        async for chunk in _parquet(store, file, work_dir):
            yield chunk


async def each_lines(
    store: ObjectStore,
    file: VersionFile,
    work_dir: Path | None,
    handle: Callable[[list[bytes]], None],
    after_chunk: Callable[[int], Awaitable[None]] | None = None,
) -> None:
    """Every record line of `file` (as JSONL, blank lines left out) through `handle`, a chunk's complete
    lines at a time in a worker thread, the last line too; `after_chunk` sees each chunk's size."""
    lines = Lines()

    def feed(chunk: bytes) -> None:
        handle(lines.feed(chunk))

    async with contextlib.aclosing(jsonl_chunks(store, file, work_dir)) as chunks:
        async for chunk in chunks:
            await asyncio.to_thread(feed, chunk)
            if after_chunk is not None:
                await after_chunk(len(chunk))
    handle(lines.end())


async def _parquet(store: ObjectStore, file: VersionFile, work_dir: Path | None) -> AsyncIterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.NamedTemporaryFile(dir=work_dir, suffix=".parquet") as spool:
        async with contextlib.aclosing(store.read(file.object_key)) as chunks:
            async for chunk in chunks:
                await asyncio.to_thread(spool.write, chunk)
        spool.flush()
        try:
            parquet = pq.ParquetFile(spool.name)
            batches = parquet.iter_batches(batch_size=BATCH_ROWS)
            while (batch := await asyncio.to_thread(next, batches, None)) is not None:
                yield _lines(
                    [{k: json_value(v) for k, v in row.items() if v is not None} for row in batch.to_pylist()]
                )
        except (pa.ArrowException, OSError) as error:
            raise InvalidRecords(file.name, 1, f"not a readable Parquet file ({error})") from None
