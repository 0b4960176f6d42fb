"""A pipeline over a version's record files, on Ray Data.

The record files are read in shards (a JSONL file in byte ranges of `shard_bytes`, each taking the lines
that start inside it; CSV and Parquet a file each) by Ray tasks that fetch them themselves, through the
pre-signed URLs in the spec, so the same run works on the embedded Ray and on a remote cluster. The
operators are cut into stages at each global operator: consecutive record-at-a-time operators are one
`map_batches`; a dedup operator computes its keys in a `map_batches`, the dataset is materialised, the
driver reads only the keys and decides which records go (streaming them through files, so its memory does
not grow with the corpus), and a last `map_batches` marks them. Order is preserved, so "first" means
first in the version's file order.

The driver then streams the rows once: kept records into one JSONL file per source file, dropped ones
into `dropped.jsonl` with the operator, the reason and (for a duplicate) the record it duplicates, counted
per operator. Progress (records through each stage, counted by a Ray actor the tasks report to) is
emitted every second.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import orjson
from forge_contracts.augmentation import AUGMENT_OPS, MEDIA_OPS
from forge_contracts.processing import (
    GLOBAL_OPS,
    ExactDedup,
    InputFile,
    NearDedup,
    Pipeline,
    ProcessSpec,
    RaySettings,
)

from forge_data_runtime import stages
from forge_data_runtime.copies import AugmentStage
from forge_data_runtime.links import open_link
from forge_data_runtime.minhash import NearDuplicateIndex
from forge_data_runtime.sandbox import RuleFailed

Emit = Callable[[dict[str, Any]], None]
READ_ROWS = 2048
"""Rows per batch read from a shard."""
MAX_SAMPLES = 20
MAX_CLUSTERS = 50
MEDIA_BATCH_ROWS = 8
"""Rows per batch through a media augmentation (each copy's file travels in the batch)."""


class PipelineFailed(Exception):
    """The pipeline cannot complete; the message is for the user."""


@dataclass(frozen=True)
class Shard:
    index: int
    file: int
    start: int
    end: int | None


def plan(inputs: list[InputFile], shard_bytes: int) -> list[Shard]:
    shards: list[Shard] = []
    for number, file in enumerate(inputs):
        if file.format != "jsonl" or file.size_bytes <= shard_bytes:
            shards.append(Shard(len(shards), number, 0, None))
            continue
        for start in range(0, file.size_bytes, shard_bytes):
            end = min(start + shard_bytes, file.size_bytes)
            shards.append(Shard(len(shards), number, start, None if end >= file.size_bytes else end))
    return shards


def output_name(name: str) -> str:
    path = PurePosixPath(name)
    return name if path.suffix == ".jsonl" else str(path.with_suffix(".jsonl"))


@contextlib.contextmanager
def start_ray(settings: RaySettings, emit: Emit) -> Iterator[Any]:
    """Ray, joined at `settings.address` or embedded (`num_cpus`, a bounded object store), shut down
    after."""
    # Ray would otherwise ship the working folder to its workers when the driver runs under `uv run`
    # (read when Ray is imported): the workers import the installed packages instead.
    os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray

    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": "WARNING",
        "configure_logging": False,
    }
    if settings.address:
        options["address"] = settings.address
    else:
        options["num_cpus"] = settings.num_cpus
        options["object_store_memory"] = settings.object_store_bytes
        options["_temp_dir"] = settings.temp_dir
    started = time.monotonic()
    ray.init(**options)
    emit({"kind": "log", "message": f"ray started in {time.monotonic() - started:.1f} s"})
    try:
        yield ray
    finally:
        ray.shutdown()


def _json_safe(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return str(value)


def read_shard(shard: Shard, file: InputFile) -> Iterator[tuple[int, bytes]]:
    """(index in the shard, record as JSON) for each record of the shard."""
    if file.format == "jsonl":
        with contextlib.closing(open_link(file.url, max(shard.start - 1, 0))) as answer:
            position = max(shard.start - 1, 0)
            if shard.start > 0:
                position += len(answer.readline())  # the end of a line that began before this shard
            index = 0
            while shard.end is None or position < shard.end:
                line = answer.readline()
                if not line:
                    break
                position += len(line)
                if line.strip():
                    yield index, line.strip()
                    index += 1
        return
    with tempfile.NamedTemporaryFile(suffix="." + file.format) as spool:
        with contextlib.closing(open_link(file.url)) as answer:
            shutil.copyfileobj(answer, spool, 8 * 1024 * 1024)
        spool.flush()
        if file.format == "csv":
            with open(spool.name, encoding="utf-8-sig", newline="") as text:
                for index, row in enumerate(csv.DictReader(text)):
                    yield index, orjson.dumps(row)
        elif file.format == "parquet":
            import pyarrow.parquet as pq

            index = 0
            for batch in pq.ParquetFile(spool.name).iter_batches(batch_size=READ_ROWS):
                for row in batch.to_pylist():
                    yield index, orjson.dumps({k: _json_safe(v) for k, v in row.items() if v is not None})
                    index += 1
        else:
            raise PipelineFailed(f"{file.name}: {file.format} files hold no records to process")


def shard_batches(shard: Shard, file: InputFile) -> Iterator[tuple[list[int], list[bytes]]]:
    """The shard's records, `READ_ROWS` at a time, with their row ids (shard << 32 | index in the
    shard); the last batch may be empty."""
    ids: list[int] = []
    records: list[bytes] = []
    for local, record in read_shard(shard, file):
        ids.append(shard.index << 32 | local)
        records.append(record)
        if len(ids) >= READ_ROWS:
            yield ids, records
            ids, records = [], []
    yield ids, records


class Counter:
    """A Ray actor the tasks tell how many rows each stage has done, and the first rule that failed (its
    message template and records: the exception itself reaches the driver only as Ray's text)."""

    def __init__(self) -> None:
        self.done: dict[int, int] = {}
        self.failure: tuple[str, tuple[Any, ...]] | None = None

    def add(self, stage: int, rows: int) -> None:
        self.done[stage] = self.done.get(stage, 0) + rows

    def counts(self) -> dict[int, int]:
        return dict(self.done)

    def fail(self, template: str, records: tuple[Any, ...]) -> None:
        if self.failure is None:
            self.failure = (template, records)

    def failed(self) -> tuple[str, tuple[Any, ...]] | None:
        return self.failure


@dataclass
class OpReport:
    position: int
    op: str
    dropped: int = 0
    changed: int = 0
    added: int = 0
    skipped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def reason(self, why: str) -> None:
        """Count a drop under its reason with the measured numbers left out (`quality: N words < ...`)."""
        key = _NUMBER.sub("N", why)[:120]
        self.reasons[key] = self.reasons.get(key, 0) + 1


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class RecordName:
    """A record named in an error raised inside a Ray task: its row id, and a name good without knowing
    the records before its shard (the driver names it by its place in the file before it reports)."""

    rid: int
    local: str

    def __str__(self) -> str:
        return self.local


class Labels:
    """Names a record (by row id) for error messages, inside Ray tasks: picklable, small."""

    def __init__(self, shards: list[Shard], names: list[str]) -> None:
        self.shards = shards
        self.names = names

    def __call__(self, rid: int) -> RecordName:
        shard = self.shards[rid >> 32]
        local = (rid & 0xFFFFFFFF) + 1
        if shard.start == 0:
            return RecordName(rid, f"{self.names[shard.file]} record {local}")
        return RecordName(rid, f"{self.names[shard.file]} record {local} of the part from byte {shard.start}")


def records_before(file: InputFile, end: int) -> int:
    """Records (non-blank lines) of a JSONL file that start before byte `end`."""
    count, partial = 0, b""
    with contextlib.closing(open_link(file.url)) as answer:
        left = end
        while left > 0:
            chunk = answer.read(min(left, 8 * 1024 * 1024))
            if not chunk:
                break
            left -= len(chunk)
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()
            count += sum(1 for line in lines if line.strip())
    return count + (1 if partial.strip() else 0)


class Run:
    def __init__(self, spec: ProcessSpec, emit: Emit) -> None:
        self.spec = spec
        self.emit = emit
        self.pipeline: Pipeline = spec.pipeline
        self.shards = plan(spec.inputs, spec.shard_bytes)
        self.total = max(sum(f.records for f in spec.inputs), 1)
        self.reports = [OpReport(k, op.op) for k, op in enumerate(self.pipeline.ops)]
        self.clusters: list[dict[str, Any]] = []
        self.dedup_stats: dict[int, dict[str, int]] = {}
        self.label = Labels(self.shards, [f.name for f in spec.inputs])

    # ---- the Ray side -----------------------------------------------------------------------------------

    def execute(self) -> dict[str, Any]:
        with start_ray(self.spec.ray, self.emit) as ray:
            try:
                return self._execute(ray)
            except Exception as error:
                failure = None
                with contextlib.suppress(Exception):
                    failure = ray.get(self.counter.failed.remote(), timeout=30)
                if failure is None:
                    raise
                template, records = failure
                raise PipelineFailed(template.format(*(self._where(r) for r in records))) from error

    def _where(self, record: Any) -> str:
        """A record's name by its place in its file (counted from the file when its shard starts later)."""
        if not isinstance(record, RecordName):
            return str(record)
        shard = self.shards[record.rid >> 32]
        file = self.spec.inputs[shard.file]
        before = records_before(file, shard.start) if shard.start else 0
        return f"{file.name} record {before + (record.rid & 0xFFFFFFFF) + 1}"

    def _execute(self, ray: Any) -> dict[str, Any]:
        import ray.data

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        counter = self.counter = ray.remote(Counter).remote()
        inputs, shards, spec = self.spec.inputs, self.shards, self.spec

        def read(batch: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
            for index in batch["shard"]:
                shard = shards[int(index)]
                for ids, records in shard_batches(shard, inputs[shard.file]):
                    counter.add.remote(0, len(ids))
                    yield stages.rows(ids, records)

        ds = ray.data.from_items(
            [{"shard": s.index} for s in shards], override_num_blocks=max(len(shards), 1)
        )
        ds = ds.map_batches(read, batch_size=1, batch_format="numpy")
        ops = list(self.pipeline.ops)
        segments = _segments(ops)
        self._progress_stages = len(segments) + 1
        stop = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(counter, stop), daemon=True)
        ticker.start()
        try:
            for stage_number, (first, segment) in enumerate(segments, start=1):
                if segment[0].op in AUGMENT_OPS:
                    ds = ds.map_batches(
                        _counted(
                            _Lazy(
                                AugmentStage,
                                segment[0],
                                first,
                                self.pipeline.seed,
                                spec.media,
                                spec.models,
                                spec.work_dir,
                            ),
                            counter,
                            stage_number,
                        ),
                        batch_format="numpy",
                        batch_size=MEDIA_BATCH_ROWS if segment[0].op in MEDIA_OPS else spec.batch_rows,
                    )
                    continue
                if segment[0].op not in GLOBAL_OPS:
                    ds = ds.map_batches(
                        _counted(
                            _Lazy(stages.RowStage, segment, first, self.pipeline.seed, self.label),
                            counter,
                            stage_number,
                        ),
                        batch_format="numpy",
                        batch_size=spec.batch_rows,
                    )
                    continue
                op = segment[0]
                ds = ds.materialize()
                if isinstance(op, ExactDedup):
                    drops = self._exact(ds, op, first, counter, stage_number)
                else:
                    drops = self._near(ds, op, first, counter, stage_number)
                reason = "exact duplicate" if isinstance(op, ExactDedup) else "near duplicate"
                drops_ref = ray.put(drops)
                ds = ds.map_batches(
                    _Marker(drops_ref, first, reason), batch_format="numpy", batch_size=spec.batch_rows
                )
            return self._write(ds)
        finally:
            stop.set()
            ticker.join(timeout=5)

    def _tick(self, counter: Any, stop: threading.Event) -> None:
        import ray

        while not stop.wait(1.0):
            with contextlib.suppress(Exception):
                counts = ray.get(counter.counts.remote(), timeout=5)
                done = sum(min(v, self.total) for v in counts.values())
                self.emit(
                    {
                        "kind": "progress",
                        "phase": "processing",
                        "progress": round(0.9 * done / (self.total * self._progress_stages), 4),
                        "records_read": counts.get(0, 0),
                        "records_total": self.total,
                        "stages": {str(k): v for k, v in sorted(counts.items())},
                    }
                )

    def _exact(self, ds: Any, op: ExactDedup, position: int, counter: Any, stage: int) -> tuple[Any, Any]:
        keyed = ds.map_batches(
            _counted(_ExactKeys(op), counter, stage), batch_format="numpy", batch_size=self.spec.batch_rows
        )
        first: dict[tuple[int, int], int] = {}
        drop_ids: list[int] = []
        originals: list[int] = []
        for batch in keyed.iter_batches(batch_format="numpy", batch_size=65_536):
            for rid, live, high, low in zip(
                batch["_rid"].tolist(),
                batch["_live"].tolist(),
                batch["_high"].tolist(),
                batch["_low"].tolist(),
                strict=True,
            ):
                if not live:
                    continue
                seen = first.setdefault((high, low), rid)
                if seen != rid:
                    drop_ids.append(rid)
                    originals.append(seen)
        self.dedup_stats[position] = {"groups": len(first), "duplicates": len(drop_ids)}
        return _sorted(drop_ids, originals)

    def _near(self, ds: Any, op: NearDedup, position: int, counter: Any, stage: int) -> tuple[Any, Any]:
        keyed = ds.map_batches(
            _counted(_Lazy(stages.NearKeys, op, self.pipeline.seed), counter, stage),
            batch_format="numpy",
            batch_size=self.spec.batch_rows,
        )
        with tempfile.TemporaryDirectory(prefix="near-dedup-", dir=self.spec.work_dir) as spill:
            index = NearDuplicateIndex(op, Path(spill))
            for batch in keyed.iter_batches(batch_format="numpy", batch_size=8192):
                has = batch["_has"]
                if has.any():
                    index.add(batch["_rid"][has], batch["_bands"][has], batch["_sig"][has])
            self.emit({"kind": "log", "message": f"near dedup: clustering {index.count} records"})
            found = index.clusters()
        dense = np.arange(len(found.root))
        duplicate = found.root != dense
        drop_ids = found.ids[duplicate]
        originals = found.ids[found.root[duplicate]]
        self.dedup_stats[position] = {
            "records_compared": len(found.root),
            "candidate_pairs": found.candidate_pairs,
            "confirmed_pairs": found.confirmed_pairs,
            "clusters": len(np.unique(found.root[duplicate])),
            "duplicates": int(duplicate.sum()),
        }
        order = np.argsort(originals, kind="stable")
        for leader, members in _groups(originals[order], drop_ids[order], MAX_CLUSTERS):
            self.clusters.append({"op": position + 1, "kept": leader, "dropped": members})
        return _sorted(drop_ids.tolist(), originals.tolist())

    # ---- the driver's output ----------------------------------------------------------------------------

    def _write(self, ds: Any) -> dict[str, Any]:
        out = Path(self.spec.output_dir)
        (out / "records").mkdir(parents=True, exist_ok=True)
        names = [output_name(f.name) for f in self.spec.inputs]
        sinks: dict[int, Any] = {}
        kept_per_file = [0] * len(self.spec.inputs)
        shard_records = [0] * len(self.shards)
        spool = (out / "dropped.unordered").open("wb")
        lineage = (out / "lineage.unordered").open("wb")
        media: set[str] = set()
        changed_records = dropped_rows = added_rows = 0
        try:
            for batch in ds.iter_batches(batch_format="numpy", batch_size=8192):
                rids, drops = batch["_rid"], batch["_drop"]
                for i, rid in enumerate(rids.tolist()):
                    shard = self.shards[rid >> 32]
                    shard_records[shard.index] = max(shard_records[shard.index], (rid & 0xFFFFFFFF) + 1)
                    copy = str(batch["_copy"][i])
                    augmentations = orjson.loads(batch["_aug"][i]) if batch["_aug"][i] else []
                    if augmentations:
                        added_rows += 1
                        self.reports[augmentations[-1]["op"] - 1].added += 1
                    chg = int(batch["_chg"][i])
                    if chg:
                        changed_records += 1
                        for report in self.reports:
                            if chg >> report.position & 1:
                                report.changed += 1
                    if batch["_notes"][i]:
                        self._note(rid, orjson.loads(batch["_notes"][i]))
                    position = int(drops[i])
                    if position < 0:
                        sink = sinks.get(shard.file)
                        if sink is None:
                            path = out / "records" / names[shard.file]
                            path.parent.mkdir(parents=True, exist_ok=True)
                            sink = sinks[shard.file] = path.open("wb")
                        sink.write(batch["_json"][i] + b"\n")
                        kept_per_file[shard.file] += 1
                        if batch["_media"][i]:
                            self._media(out / "media", media, batch["_media"][i])
                        lineage.write(
                            orjson.dumps(
                                {
                                    "rid": rid,
                                    "file": names[shard.file],
                                    "record": kept_per_file[shard.file],
                                    "variant": copy or None,
                                    "augmentations": augmentations,
                                }
                            )
                            + b"\n"
                        )
                        continue
                    dropped_rows += 1
                    report, why = self.reports[position], str(batch["_why"][i])
                    report.dropped += 1
                    report.reason(why)
                    entry = {
                        "rid": rid,
                        "op": position,
                        "why": why,
                        "dup": int(batch["_dup"][i]),
                        "variant": copy,
                    }
                    spool.write(orjson.dumps(entry) + b"\n")
                    spool.write(batch["_json"][i] + b"\n")
        finally:
            spool.close()
            lineage.close()
            for sink in sinks.values():
                sink.close()
        for number, name in enumerate(names):  # a file whose every record was dropped stays, empty
            if kept_per_file[number] == 0 and self.spec.inputs[number].records >= 0:
                (out / "records" / name).parent.mkdir(parents=True, exist_ok=True)
                (out / "records" / name).touch()
        where = self._numbering(shard_records)
        self._finish_dropped(out, where)
        self._finish_lineage(out, where)
        for report in self.reports:
            for sample in report.samples:
                sample["record"] = where(sample["record"])
        for cluster in self.clusters:
            cluster["kept"] = where(cluster["kept"])
            cluster["dropped"] = [where(r) for r in cluster["dropped"]]
        records_in = sum(shard_records)
        return {
            "records_in": records_in,
            "records_out": sum(kept_per_file),
            "records_dropped": dropped_rows,
            "records_added": added_rows,
            "records_changed": changed_records,
            "media_files_added": len(media),
            "files": [
                {
                    "source": f.name,
                    "output": names[n],
                    "records_in": sum(shard_records[s.index] for s in self.shards if s.file == n),
                    "records_out": kept_per_file[n],
                }
                for n, f in enumerate(self.spec.inputs)
            ],
            "ops": [
                {
                    "position": r.position + 1,
                    "op": r.op,
                    "dropped": r.dropped,
                    "changed": r.changed,
                    **({"added": r.added, "skipped": r.skipped} if r.op in AUGMENT_OPS else {}),
                    "reasons": dict(sorted(r.reasons.items(), key=lambda item: -item[1])[:20]),
                    "samples": r.samples,
                    **({"dedup": self.dedup_stats[r.position]} if r.position in self.dedup_stats else {}),
                }
                for r in self.reports
            ],
            "clusters": self.clusters,
        }

    def _note(self, rid: int, notes: list[dict[str, Any]]) -> None:
        """Count a skipped augmentation under its reason; keep a few samples of each operator's changes."""
        for note in notes:
            report = self.reports[note["op"]]
            if "skipped" in note:
                report.skipped += 1
                report.reason("skipped: " + note["skipped"])
                if len(report.samples) < MAX_SAMPLES:
                    report.samples.append({"record": rid, "skipped": note["skipped"]})
            elif len(report.samples) < MAX_SAMPLES:
                report.samples.append({"record": rid, **{k: v for k, v in note.items() if k != "op"}})

    @staticmethod
    def _media(folder: Path, written: set[str], packed: bytes) -> None:
        for name, data in stages.unpack_media(packed).items():
            if name in written:
                continue
            path = folder / name
            if not path.resolve().is_relative_to(folder.resolve()):
                raise PipelineFailed(f"a media copy would be written outside the output: {name}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.add(name)

    def _numbering(self, shard_records: list[int]) -> Callable[[int], dict[str, Any]]:
        """`rid` -> `{"file", "record"}` (1-based record number in the source file)."""
        before = [0] * len(self.shards)
        running: dict[int, int] = {}
        for shard in self.shards:
            before[shard.index] = running.get(shard.file, 0)
            running[shard.file] = before[shard.index] + shard_records[shard.index]

        def where(rid: int) -> dict[str, Any]:
            shard = self.shards[rid >> 32]
            return {
                "file": self.spec.inputs[shard.file].name,
                "record": before[shard.index] + (rid & 0xFFFFFFFF) + 1,
            }

        return where

    def _finish_dropped(self, out: Path, where: Callable[[int], dict[str, Any]]) -> None:
        spooled = out / "dropped.unordered"
        with spooled.open("rb") as source, (out / "dropped.jsonl").open("wb") as sink:
            while header := source.readline():
                entry = orjson.loads(header)
                data = orjson.loads(source.readline())
                position = entry["op"]
                line = {
                    **where(entry["rid"]),
                    "variant": entry["variant"] or None,
                    "op": position + 1,
                    "operator": self.pipeline.ops[position].op,
                    "reason": entry["why"],
                    "duplicate_of": where(entry["dup"]) if entry["dup"] >= 0 else None,
                    "data": data,
                }
                sink.write(orjson.dumps(line) + b"\n")
        spooled.unlink()

    def _finish_lineage(self, out: Path, where: Callable[[int], dict[str, Any]]) -> None:
        """lineage.jsonl: per output record (`file`, `record`), its source record and augmentations."""
        spooled = out / "lineage.unordered"
        with spooled.open("rb") as source, (out / "lineage.jsonl").open("wb") as sink:
            for line in source:
                entry = orjson.loads(line)
                entry["source"] = where(entry.pop("rid"))
                sink.write(orjson.dumps(entry) + b"\n")
        spooled.unlink()


def _segments(ops: list[Any]) -> list[tuple[int, list[Any]]]:
    """Consecutive record-at-a-time operators grouped; each global or augmentation operator alone."""
    alone = GLOBAL_OPS | AUGMENT_OPS
    segments: list[tuple[int, list[Any]]] = []
    for position, op in enumerate(ops):
        if op.op in alone or not segments or segments[-1][1][-1].op in alone:
            segments.append((position, [op]))
        else:
            segments[-1][1].append(op)
    return segments


def _sorted(ids: list[int], originals: list[int]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(ids, dtype=np.int64)
    b = np.asarray(originals, dtype=np.int64)
    order = np.argsort(a, kind="stable")
    return a[order], b[order]


def _groups(leaders: np.ndarray, members: np.ndarray, limit: int) -> Iterator[tuple[int, list[int]]]:
    start = 0
    for _ in range(limit):
        if start >= len(leaders):
            return
        end = int(np.searchsorted(leaders, leaders[start], side="right"))
        yield int(leaders[start]), [int(m) for m in members[start:end][:20]]
        start = end


class _Lazy:
    """Builds a stage once per Ray worker process (operators load models, compile patterns, read
    WordNet) and calls it on each batch."""

    def __init__(self, build: Callable[..., Callable[[stages.Batch], stages.Batch]], *args: Any) -> None:
        self.build, self.args = build, args
        self.stage: Callable[[stages.Batch], stages.Batch] | None = None

    def __call__(self, batch: stages.Batch) -> stages.Batch:
        if self.stage is None:
            self.stage = self.build(*self.args)
        return self.stage(batch)


class _ExactKeys:
    def __init__(self, op: ExactDedup) -> None:
        self.op = op

    def __call__(self, batch: stages.Batch) -> stages.Batch:
        return stages.exact_keys(self.op, batch)


class _Marker:
    def __init__(self, drops: Any, position: int, reason: str) -> None:
        self.drops, self.position, self.reason = drops, position, reason

    def __call__(self, batch: stages.Batch) -> stages.Batch:
        import ray

        return stages.mark(batch, ray.get(self.drops), self.position, self.reason)


def _counted(fn: Callable[[stages.Batch], stages.Batch], counter: Any, stage: int) -> Callable[..., Any]:
    def run(batch: stages.Batch) -> stages.Batch:
        try:
            result = fn(batch)
        except RuleFailed as failed:
            import ray

            ray.get(counter.fail.remote(failed.template, failed.records))
            raise
        counter.add.remote(stage, len(batch["_rid"]))
        return result

    return run


def run(spec: ProcessSpec, emit: Emit) -> dict[str, Any]:
    return Run(spec, emit).execute()


__all__ = [
    "PipelineFailed",
    "Run",
    "Shard",
    "output_name",
    "plan",
    "read_shard",
    "run",
    "shard_batches",
    "start_ray",
]
