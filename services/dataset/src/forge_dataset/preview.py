"""Record previews (DS-3): a page of a version's records, whatever their format, with full-text search
and field filters, read as a stream that stops once the page is full (or after `MAX_SCANNED` records,
said in the answer), never the whole version."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from forge_dataset import records
from forge_dataset.objects import ObjectStore
from forge_dataset.tables import VersionFile

MAX_SCANNED = 1_000_000
"""Records one preview request reads at most (a search for something rare stops there)."""


@dataclass(frozen=True)
class RecordQuery:
    offset: int = 0
    limit: int = 10
    q: str | None = None
    """Case-insensitive text every shown record contains (in any field)."""
    where: dict[str, str] = field(default_factory=dict)
    """Top-level field -> value every shown record has (a string as is, other values as JSON)."""
    file: str | None = None
    """Only this file's records."""
    fields: tuple[str, ...] = ()
    """Only these fields of each record (all when empty)."""


@dataclass
class Item:
    file: str
    index: int
    """The record's position in its file (0-based)."""
    record: dict[str, Any]


@dataclass
class RecordPage:
    items: list[Item]
    next_offset: int | None
    """Where the next page starts (None: no more matches)."""
    scanned: int
    complete: bool
    """Whether every record was looked at (False: stopped at MAX_SCANNED or on a full page)."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def matches(record: dict[str, Any], line: bytes, query: RecordQuery) -> bool:
    if query.q and query.q.lower() not in line.decode("utf-8", "replace").lower():
        return False
    return all(name in record and _text(record[name]) == value for name, value in query.where.items())


async def _lines(
    store: ObjectStore, files: Sequence[VersionFile], query: RecordQuery, work_dir: Path | None
) -> AsyncIterator[tuple[str, int, bytes]]:
    """(file name, index in the file, JSON line) of every record of the files the query reads."""
    for file in files:
        if file.format is None or (query.file is not None and file.name != query.file):
            continue
        index, pending = 0, b""
        async with contextlib.aclosing(records.jsonl_chunks(store, file, work_dir)) as chunks:
            async for chunk in chunks:
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield file.name, index, line
                        index += 1
        if pending.strip():
            yield file.name, index, pending


async def page(
    store: ObjectStore, files: Sequence[VersionFile], query: RecordQuery, work_dir: Path | None
) -> RecordPage:
    """One page of the records matching `query`, in file-name then file order."""
    items: list[Item] = []
    matched = scanned = 0
    async with contextlib.aclosing(_lines(store, files, query, work_dir)) as lines:
        async for name, index, line in lines:
            scanned += 1
            record = orjson.loads(line)
            if matches(record, line, query):
                if matched >= query.offset:
                    if len(items) == query.limit:
                        return RecordPage(items, matched, scanned, complete=False)
                    if query.fields:
                        record = {k: record[k] for k in query.fields if k in record}
                    items.append(Item(name, index, record))
                matched += 1
            if scanned >= MAX_SCANNED:
                return RecordPage(items, None, scanned, complete=False)
    return RecordPage(items, None, scanned, complete=True)
