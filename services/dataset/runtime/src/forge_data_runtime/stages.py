"""What runs inside the Ray tasks: a batch of rows through consecutive record-at-a-time operators, and the
keys the global operators (exact and near dedup) need. Pure functions of numpy batches, so they are
tested without Ray.

A row is one source record, or an augmented copy of one: `_rid` (the source record's shard << 32 | its
index in the shard), `_json` (the record as it is now; for a dropped row, as it was when dropped), `_drop`
(-1 while kept, else the position of the operator that dropped it), `_why` (the reason), `_dup` (for a
duplicate, the `_rid` it duplicates, else -1), `_chg` (a bit per operator that changed it), `_notes`
(JSON samples of changes, on a few rows), `_copy` ("" for the source record, "2" for an operator's second
copy of it, "2.1" for a later operator's first copy of that), `_aug` (JSON: the operator and seed of each
augmentation that made the copy) and `_media` (the media files made for the copy, framed by
`pack_media`). A dropped row travels on untouched, so the report can name every dropped record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import xxhash
from forge_contracts.processing import (
    ExactDedup,
    Keywords,
    Language,
    NearDedup,
    Normalize,
    Pii,
    Quality,
    Rule,
    StripHtml,
    fields_named,
)

from forge_data_runtime.language import LanguageFilter
from forge_data_runtime.minhash import MinHasher
from forge_data_runtime.sandbox import RuleRunner
from forge_data_runtime.text import HtmlStripper, KeywordFilter, Normalizer, PiiFilter, QualityFilter

Batch = dict[str, np.ndarray]
Record = dict[str, Any]
SAMPLES_PER_BATCH = 2
"""Changed records sampled (before and after) per operator and batch."""
SAMPLE_CHARS = 400
COLUMNS = ("_rid", "_json", "_drop", "_why", "_dup", "_chg", "_notes", "_copy", "_aug", "_media")


def writable(batch: Batch) -> Batch:
    """The batch with columns that can be changed (Ray hands them over read-only)."""
    return {k: v if v.flags.writeable else v.copy() for k, v in batch.items()}


def empty_rows() -> Batch:
    return rows([], [])


def rows(ids: list[int], records: list[bytes]) -> Batch:
    """Fresh rows for records just read."""
    n = len(ids)
    return {
        "_rid": np.asarray(ids, dtype=np.int64),
        "_json": np.asarray(records, dtype=object),
        "_drop": np.full(n, -1, dtype=np.int16),
        "_why": np.asarray([""] * n, dtype=object),
        "_dup": np.full(n, -1, dtype=np.int64),
        "_chg": np.zeros(n, dtype=np.uint64),
        "_notes": np.asarray([b""] * n, dtype=object),
        "_copy": np.asarray([""] * n, dtype=object),
        "_aug": np.asarray([b""] * n, dtype=object),
        "_media": np.asarray([b""] * n, dtype=object),
    }


def pack_media(files: dict[str, bytes]) -> bytes:
    """Named files as one value: per file, its name's length (4 bytes), name, size (8 bytes), bytes."""
    out = bytearray()
    for name, data in files.items():
        encoded = name.encode()
        out += len(encoded).to_bytes(4, "big") + encoded + len(data).to_bytes(8, "big") + data
    return bytes(out)


def unpack_media(packed: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    at = 0
    while at < len(packed):
        size = int.from_bytes(packed[at : at + 4], "big")
        name = packed[at + 4 : at + 4 + size].decode()
        at += 4 + size
        length = int.from_bytes(packed[at : at + 8], "big")
        files[name] = packed[at + 8 : at + 8 + length]
        at += 8 + length
    return files


def _record_ops(op: Any) -> Callable[[Record], str | None]:
    if isinstance(op, StripHtml):
        return HtmlStripper(op).apply
    if isinstance(op, Normalize):
        return Normalizer(op).apply
    if isinstance(op, Language):
        return LanguageFilter(op).apply
    if isinstance(op, Quality):
        return QualityFilter(op).apply
    if isinstance(op, Keywords):
        return KeywordFilter(op).apply
    if isinstance(op, Pii):
        return PiiFilter(op).apply
    raise TypeError(f"{op.op} is not a record-at-a-time operator")


def clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > SAMPLE_CHARS:
        return value[:SAMPLE_CHARS] + "…"
    return value


def _watched(op: Any) -> list[str]:
    names = fields_named(op)
    annotate = getattr(op, "annotate", None)
    return [*names, annotate] if isinstance(annotate, str) else names


class RowStage:
    """Consecutive record-at-a-time operators (positions `first`.. in the pipeline), built once per Ray
    worker; `__call__` takes and returns a batch of rows. `label(rid)` names a record in errors."""

    def __init__(self, ops: list[Any], first: int, seed: int, label: Callable[[int], Any]) -> None:
        self.first = first
        self.ops = ops
        self.label = label
        self.apply: list[Any] = [
            RuleRunner(op, first + k, seed) if isinstance(op, Rule) else _record_ops(op)
            for k, op in enumerate(ops)
        ]

    def __call__(self, batch: Batch) -> Batch:
        batch = writable(batch)
        live = np.flatnonzero(batch["_drop"] < 0)
        records: dict[int, Record] = {int(i): orjson.loads(batch["_json"][i]) for i in live}
        notes: dict[int, list[Any]] = {}
        for k, (op, apply) in enumerate(zip(self.ops, self.apply, strict=True)):
            position = self.first + k
            bit = np.uint64(1 << position)
            sampled = 0
            if isinstance(apply, RuleRunner):
                order = list(records)
                before = [records[i] for i in order]
                results = apply.run(before, [self.label(int(batch["_rid"][i])) for i in order])
                for i, result in zip(order, results, strict=True):
                    if op.mode == "filter":
                        if not result:
                            self._drop(batch, records, i, position, f"rule {op.name!r} returned false")
                    elif result is None:
                        self._drop(batch, records, i, position, f"rule {op.name!r} dropped it")
                    elif result != records[i]:
                        if sampled < SAMPLES_PER_BATCH:
                            notes.setdefault(i, []).append(
                                {"op": position, "before": _sample(records[i]), "after": _sample(result)}
                            )
                            sampled += 1
                        records[i] = result
                        batch["_chg"][i] |= bit
                continue
            watched = _watched(op)
            for i in list(records):
                record = records[i]
                old = {name: record.get(name) for name in watched}
                reason = apply(record)
                if reason is not None:
                    record.update({name: value for name, value in old.items() if value is not None})
                    self._drop(batch, records, i, position, reason)
                    continue
                new = {name: record.get(name) for name in watched}
                if new != old:
                    batch["_chg"][i] |= bit
                    if sampled < SAMPLES_PER_BATCH:
                        changed = [name for name in watched if new[name] != old[name]]
                        notes.setdefault(i, []).append(
                            {
                                "op": position,
                                "before": {n: clip(old[n]) for n in changed},
                                "after": {n: clip(new[n]) for n in changed},
                            }
                        )
                        sampled += 1
        for i, record in records.items():
            batch["_json"][i] = orjson.dumps(record)
        for i, found in notes.items():
            previous = orjson.loads(batch["_notes"][i]) if batch["_notes"][i] else []
            batch["_notes"][i] = orjson.dumps(previous + found)
        return batch

    @staticmethod
    def _drop(batch: Batch, records: dict[int, Record], i: int, position: int, reason: str) -> None:
        batch["_json"][i] = orjson.dumps(records.pop(i))
        batch["_drop"][i] = position
        batch["_why"][i] = reason


def _sample(record: Record) -> Record:
    return {k: clip(v) for k, v in list(record.items())[:20]}


def exact_keys(op: ExactDedup, batch: Batch) -> Batch:
    """`_key`: a 128-bit digest (two int64 columns) of the compared fields of each kept row."""
    n = len(batch["_rid"])
    high = np.zeros(n, dtype=np.uint64)
    low = np.zeros(n, dtype=np.uint64)
    for i in np.flatnonzero(batch["_drop"] < 0):
        record = orjson.loads(batch["_json"][i])
        value = {f: record.get(f) for f in op.fields} if op.fields else record
        if op.normalize:
            value = {k: " ".join(v.lower().split()) if isinstance(v, str) else v for k, v in value.items()}
        digest = xxhash.xxh3_128_intdigest(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
        high[i], low[i] = digest >> 64, digest & 0xFFFFFFFFFFFFFFFF
    return {"_rid": batch["_rid"], "_live": batch["_drop"] < 0, "_high": high, "_low": low}


class NearKeys:
    """Band keys and signatures of each kept row's text (`_has`: it has text to compare)."""

    def __init__(self, op: NearDedup, seed: int) -> None:
        self.op = op
        self.hasher = MinHasher(op, seed)

    def __call__(self, batch: Batch) -> Batch:
        live = batch["_drop"] < 0
        texts: list[str | None] = []
        for i, row in enumerate(batch["_json"]):
            value = orjson.loads(row).get(self.op.field) if live[i] else None
            texts.append(value if isinstance(value, str) else None)
        signatures, has = self.hasher.signatures(texts)
        return {
            "_rid": batch["_rid"],
            "_has": has,
            "_bands": self.hasher.band_keys(signatures),
            "_sig": signatures,
        }


def mark(batch: Batch, drops: tuple[np.ndarray, np.ndarray], position: int, reason: str) -> Batch:
    """Drop the rows whose `_rid` is in `drops` (sorted ids, and the id each duplicates)."""
    ids, originals = drops
    if len(ids):
        batch = writable(batch)
        at = np.searchsorted(ids, batch["_rid"])
        at[at >= len(ids)] = 0
        hit = (ids[at] == batch["_rid"]) & (batch["_drop"] < 0)
        batch["_drop"][hit] = position
        batch["_dup"][hit] = originals[at[hit]]
        batch["_why"][hit] = reason
    return batch


__all__ = [
    "COLUMNS",
    "NearKeys",
    "RowStage",
    "empty_rows",
    "exact_keys",
    "mark",
    "pack_media",
    "rows",
    "unpack_media",
]
