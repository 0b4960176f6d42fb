"""Row-level diff of two dataset versions, streamed in bounded memory (no I/O but local spill files).

Every record of both versions is fed through once: it is parsed, given a key digest (the key column's
value, or the record's own content when there is no key column) and a content digest (its canonical
JSON: sorted keys, so key order is not a change), and appended to one of P partition files on local disk
by its key digest. Then each partition is compared on its own: the base side's entries of one partition
are held in a dict, the new side's are streamed against it. Memory is one partition (about 1/P of the
smaller version), whatever the versions' size; P is chosen from the versions' bytes and records.

With a key column a record is `added` (key only in the new version), `removed` (key only in the base),
`changed` (same key, different content: both records and the fields that differ) or unchanged; a key
appearing twice in one version is an error (the diff would be ambiguous). Without one, records are
compared by content as a multiset: a record is added or removed, never changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

CHANGES = ("added", "removed", "changed")
PARTITION_BYTES = 32 * 1024 * 1024
PARTITION_RECORDS = 100_000
MAX_PARTITIONS = 256
MIN_PARTITIONS = 4
MAX_LINE_BYTES = 16 * 1024 * 1024
WRITE_BUFFER = 64 * 1024
"""Per partition file while feeding: 2 x P of them are open, so this is what grows with P."""
_ENTRY = struct.Struct("<16s16sI")


class DiffError(ValueError):
    """The versions cannot be diffed as asked (a record without the key, a duplicate key)."""


def partitions_for(total_bytes: int, total_records: int) -> int:
    """How many partitions keep one in memory small: about PARTITION_BYTES and PARTITION_RECORDS each."""
    wanted = max(math.ceil(total_bytes / PARTITION_BYTES), math.ceil(total_records / PARTITION_RECORDS))
    return max(MIN_PARTITIONS, min(MAX_PARTITIONS, wanted))


def canonical(value: Any) -> bytes:
    """Compact JSON with sorted keys: equal values give equal bytes, whatever their key order."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits: the standard library writes any
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:  # orjson refuses integers beyond 64 bits; JSON itself does not
        return json.loads(line)


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


@dataclass
class _Spiller:
    """One side's records, appended to partition files by key digest."""

    directory: Path
    partitions: int
    key: str | None
    records: int = 0
    _files: list[IO[bytes]] = field(default_factory=list)
    _pending: bytearray = field(default_factory=bytearray)
    _file: str = ""
    _line: int = 0

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files = [open(self.path(p), "wb", buffering=WRITE_BUFFER) for p in range(self.partitions)]

    def path(self, partition: int) -> Path:
        return self.directory / f"{partition:03d}"

    def start_file(self, name: str) -> None:
        self._file, self._line = name, 0
        self._pending.clear()

    def feed(self, chunk: bytes) -> None:
        self._pending += chunk
        start = 0
        while (end := self._pending.find(b"\n", start)) != -1:
            self._add(bytes(self._pending[start:end]))
            start = end + 1
        del self._pending[:start]
        if len(self._pending) > MAX_LINE_BYTES:
            raise DiffError(f"{self._file} line {self._line + 1}: longer than {MAX_LINE_BYTES} bytes")

    def end_file(self) -> None:
        if self._pending:
            self._add(bytes(self._pending))
            self._pending.clear()

    def _add(self, line: bytes) -> None:
        self._line += 1
        line = line.rstrip(b"\r")
        if not line.strip():
            return
        try:
            record = loads(line)
        except ValueError as error:
            raise DiffError(f"{self._file} line {self._line}: not valid JSON ({error})") from None
        if not isinstance(record, dict):
            raise DiffError(f"{self._file} line {self._line}: not a JSON object")
        content = _digest(canonical(record))
        if self.key is None:
            key = content
        elif self.key not in record:
            raise DiffError(f"{self._file} line {self._line}: the record has no {self.key!r} field")
        else:
            key = _digest(canonical(record[self.key]))
        self._files[int.from_bytes(key[:4]) % self.partitions].write(
            _ENTRY.pack(key, content, len(line)) + line
        )
        self.records += 1

    def close(self) -> None:
        for file in self._files:
            file.close()

    def entries(self, partition: int) -> Iterator[tuple[bytes, bytes, bytes]]:
        with open(self.path(partition), "rb", buffering=1024 * 1024) as file:
            while header := file.read(_ENTRY.size):
                key, content, size = _ENTRY.unpack(header)
                yield key, content, file.read(size)


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(
        name
        for name in before.keys() | after.keys()
        if name not in before or name not in after or canonical(before[name]) != canonical(after[name])
    )


@dataclass
class Differ:
    """Feed the base version (`base.feed`), then the new one (`version.feed`); `compare` each partition;
    the changes are in `directory/{added,removed,changed}.jsonl` and the counts in `counts`."""

    directory: Path
    partitions: int
    key: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*CHANGES, "unchanged"), 0))

    def __post_init__(self) -> None:
        self.base = _Spiller(self.directory / "base", self.partitions, self.key)
        self.version = _Spiller(self.directory / "version", self.partitions, self.key)
        self._out = {name: open(self.output(name), "wb", buffering=1024 * 1024) for name in CHANGES}

    def output(self, change: str) -> Path:
        return self.directory / f"{change}.jsonl"

    def end_feeding(self) -> None:
        self.base.close()
        self.version.close()

    def compare(self, partition: int) -> None:
        if self.key is None:
            self._compare_contents(partition)
        else:
            self._compare_keyed(partition)
        for file in (self.base.path(partition), self.version.path(partition)):
            file.unlink()

    def _compare_keyed(self, partition: int) -> None:
        base: dict[bytes, tuple[bytes, bytes]] = {}
        for key, content, line in self.base.entries(partition):
            if key in base:
                raise DiffError(self._duplicate("base", line))
            base[key] = (content, line)
        seen: set[bytes] = set()
        for key, content, line in self.version.entries(partition):
            if key in seen:
                raise DiffError(self._duplicate("new", line))
            seen.add(key)
            old = base.pop(key, None)
            if old is None:
                self._write("added", line)
            elif old[0] != content:
                before, after = loads(old[1]), loads(line)
                change = {"key": after[self.key], "fields": changed_fields(before, after)}
                self._write("changed", canonical({**change, "before": before, "after": after}))
            else:
                self.counts["unchanged"] += 1
        for _, line in base.values():
            self._write("removed", line)

    def _compare_contents(self, partition: int) -> None:
        base: dict[bytes, list[Any]] = {}
        for key, _, line in self.base.entries(partition):
            if key in base:
                base[key][0] += 1
            else:
                base[key] = [1, line]
        for key, _, line in self.version.entries(partition):
            held = base.get(key)
            if held is not None and held[0] > 0:
                held[0] -= 1
                self.counts["unchanged"] += 1
            else:
                self._write("added", line)
        for count, line in base.values():
            for _ in range(count):
                self._write("removed", line)

    def _duplicate(self, side: str, line: bytes) -> str:
        value = loads(line)[self.key]
        return (
            f"key {self.key!r} is not unique in the {side} version: {canonical(value).decode()[:200]} "
            "appears more than once; diff by another key, or by content (no key)"
        )

    def _write(self, change: str, line: bytes) -> None:
        self._out[change].write(line + b"\n")
        self.counts[change] += 1

    def close(self) -> None:
        self.end_feeding()
        for file in self._out.values():
            file.close()
