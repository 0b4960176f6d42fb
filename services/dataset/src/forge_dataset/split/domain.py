"""Splits of a version's records, streamed in bounded memory (no I/O but the output files).

Every kind is seeded and reproducible: the same records in the same order with the same plan give the
same files. Records keep their order within each output.

- **ratio** (train/validation/test) and **k-fold** (fold-1..fold-k): exact counts per stratum (the whole
  version is one stratum without `stratify_by`): a stratum of n records gets int(n x ratio) train and
  validation records and the rest test, or n/k per fold (the remainder spread over the folds, rotating
  between strata so fold sizes stay even). Records are drawn into the outputs by sequential sampling
  without replacement (each record goes to an output with probability remaining-for-it / records-left),
  which picks each possible assignment with those counts equally likely, holding only a counter per
  stratum. With `stratify_by` a first pass counts the strata.
- **grouped** (`group_by`): a group's records all go to one output, chosen by a seeded hash of the
  group's value against the ratios (or folds): no group crosses outputs, one pass, no per-group state.
  Output sizes then follow the ratios only on average (groups are whole).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from forge_dataset.diff.domain import canonical, loads
from forge_dataset.domain import JsonlScanner

SPLIT_NAMES = ("train", "validation", "test")
MAX_STRATA = 10_000
MAX_LINE_BYTES = 16 * 1024 * 1024
MISSING = b"\x00missing"
"""The stratum or group of a record without the field (distinct from the value null)."""


class SplitError(ValueError):
    """The version cannot be split as asked (too many strata, a bad record)."""


@dataclass(frozen=True)
class SplitPlan:
    seed: int
    ratios: dict[str, float] | None = None
    folds: int | None = None
    stratify_by: str | None = None
    group_by: str | None = None

    @property
    def names(self) -> list[str]:
        if self.folds is not None:
            return [f"fold-{i}" for i in range(1, self.folds + 1)]
        return list(SPLIT_NAMES)

    @property
    def needs_counts(self) -> bool:
        """Whether a first pass must count the strata (exact counts per stratum)."""
        return self.stratify_by is not None and self.group_by is None


def value_of(record: dict[str, Any], name: str) -> bytes:
    return canonical(record[name]) if name in record else MISSING


class Lines:
    """Complete lines out of chunks of any size; holds at most one partial line."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self.number = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        self._pending += chunk
        *complete, rest = bytes(self._pending).split(b"\n")
        self._pending = bytearray(rest)
        if len(self._pending) > MAX_LINE_BYTES:
            raise SplitError(f"line {self.number + len(complete) + 1}: longer than {MAX_LINE_BYTES} bytes")
        return self._records(complete)

    def end(self) -> list[bytes]:
        rest, self._pending = bytes(self._pending), bytearray()
        return self._records([rest]) if rest else []

    def _records(self, lines: list[bytes]) -> list[bytes]:
        self.number += len(lines)
        return [line.rstrip(b"\r") for line in lines if line.strip()]


def _record(line: bytes) -> dict[str, Any]:
    try:
        record = loads(line)
    except ValueError as error:
        raise SplitError(f"a record is not valid JSON ({error})") from None
    if not isinstance(record, dict):
        raise SplitError("a record is not a JSON object")
    return record


@dataclass
class StrataCounter:
    """The first pass: records per stratum."""

    field_name: str
    counts: Counter[bytes] = field(default_factory=Counter)

    def add(self, lines: list[bytes]) -> None:
        for line in lines:
            self.counts[value_of(_record(line), self.field_name)] += 1
        if len(self.counts) > MAX_STRATA:
            raise SplitError(
                f"{self.field_name!r} has more than {MAX_STRATA} distinct values: stratify by a field with "
                "fewer (a label), or split grouped by it"
            )


def targets(plan: SplitPlan, n: int, rotation: int) -> list[int]:
    """How many of a stratum's n records each output gets."""
    if plan.folds is not None:
        share, extra = divmod(n, plan.folds)
        return [share + (1 if (i - rotation) % plan.folds < extra else 0) for i in range(plan.folds)]
    assert plan.ratios is not None
    train = int(n * plan.ratios["train"])
    validation = int(n * plan.ratios["validation"])
    return [train, validation, n - train - validation]


class Output:
    """One output file, written through a scanner (its sha256, size, records and statistics)."""

    def __init__(self, name: str, path: Path) -> None:
        self.name, self.path = f"{name}.jsonl", path
        self.scanner = JsonlScanner(self.name)
        self._file: IO[bytes] = path.open("wb")
        self._buffer = bytearray()

    def write(self, line: bytes) -> None:
        self._buffer += line
        self._buffer += b"\n"
        if len(self._buffer) >= 1024 * 1024:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            data = bytes(self._buffer)
            self.scanner.feed(data)
            self._file.write(data)
            self._buffer.clear()

    def close(self) -> None:
        self.flush()
        self.scanner.finish_allowing_empty()
        self._file.close()


class Splitter:
    """The second (or only) pass: each record to its output."""

    def __init__(self, plan: SplitPlan, directory: Path, counts: dict[bytes, int] | None) -> None:
        self.plan = plan
        self.outputs = [Output(name, directory / f"{name}.jsonl") for name in plan.names]
        self._rng = random.Random(plan.seed)
        self._remaining: dict[bytes, list[int]] = {}
        self._left: dict[bytes, int] = {}
        rotation = 0  # where the next stratum's remainder starts: folds stay within one record
        for stratum, n in sorted((counts or {}).items()):
            self._remaining[stratum] = targets(plan, n, rotation)
            self._left[stratum] = n
            rotation += n % plan.folds if plan.folds else 0
        self._cuts: list[float] = []
        if plan.ratios is not None:
            total = 0.0
            for name in SPLIT_NAMES:
                total += plan.ratios[name]
                self._cuts.append(total)
        self.records = 0

    def add(self, lines: list[bytes]) -> None:
        for line in lines:
            self.outputs[self._choose(line)].write(line)
            self.records += 1

    def _choose(self, line: bytes) -> int:
        plan = self.plan
        if plan.group_by is not None:
            value = value_of(_record(line), plan.group_by)
            digest = hashlib.blake2b(value, digest_size=8, key=plan.seed.to_bytes(8, "big")).digest()
            u = int.from_bytes(digest) / 2**64
            if plan.folds is not None:
                return int(u * plan.folds)
            return next((i for i, cut in enumerate(self._cuts) if u < cut), len(self._cuts) - 1)
        stratum = value_of(_record(line), plan.stratify_by) if plan.stratify_by is not None else b""
        left = self._left.get(stratum, 0)
        if left <= 0:
            raise SplitError("the version changed between the passes (more records than counted)")
        remaining = self._remaining[stratum]
        draw = self._rng.randrange(left)
        for index, wanted in enumerate(remaining):
            if draw < wanted:
                remaining[index] -= 1
                self._left[stratum] = left - 1
                return index
            draw -= wanted
        raise AssertionError("unreachable: the targets sum to the records left")

    def close(self) -> None:
        for output in self.outputs:
            output.close()
