"""Near-duplicate removal: Forge's MinHash-LSH against datatrove's MinHash pipeline, on the same corpus.

The corpus is generated on local disk as JSONL (`{"id", "text"}`): documents of 60-140 words drawn from
30 000 letter-only pseudo-words (so both tokenisers see the same words), and 10 % planted near-copies of
earlier documents, each with 1-12 of its words replaced, which puts the copies' 5-gram Jaccard similarity
with their originals between about 0.4 and 0.97. The ground truth is exact: a copy is a near duplicate when
the exact 5-gram Jaccard similarity with its original is at least 0.7 (unrelated documents share no
5-grams; the generator checks a sample).

Each method runs in its own fresh process on the same file, one core, reading the JSONL and writing the
kept documents as JSONL:
- **datatrove** 0.10 (`datatrove[processing]`, English spaCy word tokeniser): its four local stages
  (signatures, 14 buckets, clusters, filter), 5-grams, 14 bands x 8 hashes, one task and one worker each;
- **forge**: `forge_data_runtime.minhash` as the runtime's Ray tasks and driver use it (signatures a batch
  of 1024 documents at a time, band keys spilled to disk, clusters) with the operator's defaults: 5-grams,
  256 MinHash values per document of which 20 bands x 5 rows are banded, candidate pairs confirmed at an
  estimated Jaccard similarity >= 0.7.
Reported: documents per second (end to end, JSONL in and out), peak RSS (the process's VmHWM), precision
and recall of the removed documents against the ground truth, at 10^4, 10^5 and 10^6 documents.

Scale-out: the data runtime itself (`python -m forge_data_runtime process`: an embedded Ray, the record
file read in shards through HTTP range requests from a local server, as from MinIO's pre-signed links)
runs the same near-dedup pipeline on the 10^5 corpus with Ray given 1 and then 2 CPUs; the speed-up
is the ratio of the two runs' processing times (Ray's start-up, reported apart, excluded).

Prints a Markdown table; `--write` also replaces the near-dedup section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import random
import re
import shutil
import string
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from report import write_section

SIZES = (10_000, 100_000, 1_000_000)
SCALE_OUT_SIZE = 100_000
BASELINE_MAX = 100_000
"""datatrove runs at most at this size: at about 300 documents/s on this machine, 10^6 documents would
take it close to an hour; above it only forge runs (its memory growth is what the largest size shows)."""
THRESHOLD = 0.7
NGRAM, BANDS, ROWS = 5, 14, 8
"""Shingles of both; datatrove's bands and hashes per band (its defaults)."""
COPY_SHARE = 0.10
HEADING = "## Data processing: near-duplicate removal (`bench/near_dedup.py`)"


def _peak() -> int:
    status = Path("/proc/self/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) * 1024 if found else 0


def _grams(words: list[str]) -> set[tuple[str, ...]]:
    return set(zip(*[words[i:] for i in range(NGRAM)], strict=False))


def _jaccard(a: list[str], b: list[str]) -> float:
    x, y = _grams(a), _grams(b)
    return len(x & y) / len(x | y)


def generate(folder: Path, documents: int) -> dict[str, Any]:
    rng = random.Random(documents)
    vocabulary = sorted(
        {"".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 9))) for _ in range(31_000)}
    )[:30_000]
    originals = int(documents * (1 - COPY_SHARE))
    texts: list[list[str]] = []
    truth: dict[int, float] = {}
    path = folder / "corpus.jsonl"
    with path.open("w") as out:
        for i in range(documents):
            if i < originals:
                words = rng.choices(vocabulary, k=rng.randint(60, 140))
            else:
                source = rng.randrange(originals)
                words = list(texts[source])
                for position in rng.sample(range(len(words)), rng.randint(1, 12)):
                    words[position] = rng.choice(vocabulary)
                truth[i] = _jaccard(texts[source], words)
            texts.append(words)
            out.write(json.dumps({"id": i, "text": " ".join(words)}) + "\n")
    background = max(
        _jaccard(texts[rng.randrange(originals)], texts[rng.randrange(originals)]) for _ in range(2000)
    )
    return {
        "path": str(path),
        "bytes": path.stat().st_size,
        "duplicates": sorted(i for i, j in truth.items() if j >= THRESHOLD),
        "copies": len(truth),
        "background_max_jaccard": background,
    }


def run_forge(corpus: Path, out: Path) -> dict[str, Any]:
    import numpy as np
    import orjson
    from forge_contracts.processing import NearDedup
    from forge_data_runtime.minhash import MinHasher, NearDuplicateIndex

    started = time.perf_counter()
    params = NearDedup(op="near_dedup", ngram=NGRAM, threshold=THRESHOLD)  # the operator's defaults
    hasher = MinHasher(params, seed=0)
    ids: list[int] = []
    with tempfile.TemporaryDirectory(prefix="forge-lsh-", dir=out) as spill:
        index = NearDuplicateIndex(params, Path(spill))
        batch: list[str] = []
        with corpus.open("rb") as source:
            for number, line in enumerate(source):
                record = orjson.loads(line)
                ids.append(record["id"])
                batch.append(record["text"])
                if len(batch) == 1024:
                    signatures, _ = hasher.signatures(batch)  # type: ignore[arg-type]
                    index.add(
                        np.arange(number + 1 - len(batch), number + 1),
                        hasher.band_keys(signatures),
                        signatures,
                    )
                    batch = []
        if batch:
            signatures, _ = hasher.signatures(batch)  # type: ignore[arg-type]
            index.add(np.arange(len(ids) - len(batch), len(ids)), hasher.band_keys(signatures), signatures)
        clusters = index.clusters()
    removed = set(np.flatnonzero(clusters.root != np.arange(len(clusters.root))).tolist())
    with corpus.open("rb") as source, (out / "forge.jsonl").open("wb") as sink:
        for number, line in enumerate(source):
            if number not in removed:
                sink.write(line)
    return {
        "seconds": time.perf_counter() - started,
        "removed": sorted(ids[i] for i in removed),
        "peak_rss": _peak(),
    }


def run_datatrove(corpus: Path, out: Path) -> dict[str, Any]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    work = out / "datatrove"
    config = MinhashConfig(n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS)
    reader = functools.partial(JsonlReader, str(corpus.parent), glob_pattern=corpus.name, compression=None)
    stages = [
        ([reader(), MinhashDedupSignature(output_folder=str(work / "signatures"), config=config)], 1),
        (
            [
                MinhashDedupBuckets(
                    input_folder=str(work / "signatures"), output_folder=str(work / "buckets"), config=config
                )
            ],
            BANDS,
        ),
        (
            [
                MinhashDedupCluster(
                    input_folder=str(work / "buckets"), output_folder=str(work / "remove"), config=config
                )
            ],
            1,
        ),
        (
            [
                reader(),
                MinhashDedupFilter(
                    input_folder=str(work / "remove"),
                    exclusion_writer=JsonlWriter(str(work / "removed"), compression=None),
                ),
                JsonlWriter(str(work / "kept"), compression=None),
            ],
            1,
        ),
    ]
    started = time.perf_counter()
    for number, (pipeline, tasks) in enumerate(stages):
        LocalPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=1, logging_dir=str(work / f"logs-{number}")
        ).run()
    seconds = time.perf_counter() - started
    removed = []
    for path in sorted((work / "removed").glob("*.jsonl")):
        removed += [int(json.loads(line)["id"]) for line in path.read_text().splitlines() if line]
    return {"seconds": seconds, "removed": sorted(removed), "peak_rss": _peak()}


def _child(argv: list[str]) -> None:
    if argv[0] == "generate":
        result = generate(Path(argv[1]), int(argv[2]))
    elif argv[0] == "forge":
        result = run_forge(Path(argv[1]), Path(argv[2]))
    else:
        result = run_datatrove(Path(argv[1]), Path(argv[2]))
    print(json.dumps(result))


def _run_child(*args: object) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", *map(str, args)]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _quality(removed: list[int], truth: list[int]) -> tuple[float, float]:
    found, expected = set(removed), set(truth)
    hits = len(found & expected)
    return hits / max(len(found), 1), hits / max(len(expected), 1)


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with `Range: bytes=N-` (what the data runtime asks its pre-signed links for)."""

    def log_message(self, *_: Any) -> None:
        return

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        found = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
        start = int(found.group(1)) if found else 0
        self.send_response(206 if found else 200)
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        with path.open("rb") as source, contextlib.suppress(ConnectionResetError, BrokenPipeError):
            source.seek(start)  # a shard's reader hangs up once past its end
            shutil.copyfileobj(source, self.wfile, 1024 * 1024)


def scale_out(corpus: Path, records: int, work: Path) -> dict[int, dict[str, Any]]:
    handler = functools.partial(_RangeHandler, directory=str(corpus.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    results: dict[int, dict[str, Any]] = {}
    try:
        for cpus in (1, 2):
            out = work / f"ray-{cpus}"
            ray_dir = tempfile.mkdtemp(prefix="fr-", dir="/tmp")
            spec = {
                "pipeline": {
                    "ops": [
                        {
                            "op": "near_dedup",  # the operator's defaults, as the forge column
                            "ngram": NGRAM,
                            "threshold": THRESHOLD,
                        }
                    ]
                },
                "inputs": [
                    {
                        "name": corpus.name,
                        "format": "jsonl",
                        "url": f"http://127.0.0.1:{server.server_address[1]}/{corpus.name}",
                        "size_bytes": corpus.stat().st_size,
                        "records": records,
                    }
                ],
                "output_dir": str(out),
                "work_dir": str(work),
                "ray": {"num_cpus": cpus, "temp_dir": ray_dir, "object_store_bytes": 512 * 1024**2},
                "shard_bytes": 4 * 1024 * 1024,
            }
            (work / "spec.json").write_text(json.dumps(spec))
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "forge_data_runtime", "process", "--spec", str(work / "spec.json")],
                capture_output=True,
                text=True,
                check=False,
            )
            total = time.perf_counter() - started
            shutil.rmtree(ray_dir, ignore_errors=True)
            events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
            result = next((e["result"] for e in events if e["kind"] == "result"), None)
            if done.returncode != 0 or result is None:
                sys.exit(f"the runtime failed with {cpus} CPUs:\n{done.stderr[-3000:]}")
            started = (re.match(r"ray started in ([0-9.]+) s", e.get("message", "")) for e in events)
            ray_start = next(float(found.group(1)) for found in started if found)
            results[cpus] = {
                "seconds": total,
                "ray_start_s": ray_start,
                "dropped": result["records_dropped"],
                "dedup": result["ops"][0].get("dedup"),
                "records_in": result["records_in"],
            }
    finally:
        server.shutdown()
    return results


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def table(results: list[dict[str, Any]], scaled: dict[int, dict[str, Any]] | None, load_before: float) -> str:
    rows = [
        "| documents | method | docs/s (1 core) | forge / datatrove | peak RSS | precision | recall |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        n, d, f = r["documents"], r["datatrove"], r["forge"]
        if d is None:
            rows.append(f"| {n:,} | datatrove | not run (`--baseline-max`) | | | | |")
        for name, m in (("datatrove", d), ("forge", f)):
            if m is None:
                continue
            precision, recall = _quality(m["removed"], r["data"]["duplicates"])
            ratio = f"**{d['seconds'] / f['seconds']:.2f}x**" if name == "forge" and d else ""
            rows.append(
                f"| {n:,} | {name} | {n / m['seconds']:,.0f} | {ratio} | {_mib(m['peak_rss'])} "
                f"| {precision:.4f} | {recall:.4f} |"
            )
    for side in ("datatrove", "forge"):
        measured = [r for r in results if r[side] is not None]
        if len(measured) > 1:
            small, large = measured[0], measured[-1]
            growth = large[side]["peak_rss"] / small[side]["peak_rss"]
            rows.append(
                f"| {small['documents']:,} -> {large['documents']:,} | {side}: peak RSS growth | | | "
                f"**{growth:.2f}x** for {large['documents'] / small['documents']:,.0f}x the documents | | |"
            )
    notes = [
        f"{r['documents']:,} documents ({_mib(r['data']['bytes'])}): {r['data']['copies']:,} planted copies, "
        f"{len(r['data']['duplicates']):,} of them at Jaccard >= {THRESHOLD} (the ground truth); the highest "
        f"similarity of 2 000 random unrelated pairs was {r['data']['background_max_jaccard']:.3f}."
        for r in results
    ]
    text = "\n".join(rows) + "\n\n" + "\n".join(f"- {note}" for note in notes) + "\n"
    if scaled:
        one, two = scaled[1], scaled[2]
        work1, work2 = one["seconds"] - one["ray_start_s"], two["seconds"] - two["ray_start_s"]
        text += (
            f"\nScale-out, the data runtime on Ray, {SCALE_OUT_SIZE:,} documents (near-dedup pipeline): "
            f"1 CPU {work1:.1f} s, 2 CPUs {work2:.1f} s of processing (Ray's start-up "
            f"{one['ray_start_s']:.1f} s and {two['ray_start_s']:.1f} s apart): **{work1 / work2:.2f}x** "
            f"speed-up; both dropped {one['dropped']:,} documents.\n"
        )
    load = os.getloadavg()[0]
    return (
        text + f"\nLoad average {load_before:.1f} before the run and {load:.1f} after it, "
        f"on {os.cpu_count()} cores.\n"
    )


def _write_section(section: str) -> None:
    write_section(
        "near-dedup",
        "near_dedup.py",
        section,
        heading=HEADING,
        intro=(
            "Target (issue 9): documents/s per core at least datatrove's MinHash pipeline's, at equal or\n"
            "better precision and recall against exact Jaccard ground truth, peak memory bounded as the\n"
            "corpus grows; the same task on 1 and 2 Ray workers. Method: the docstring of\n"
            "`bench/near_dedup.py`.\n\n"
        ),
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--documents", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--no-scale-out", action="store_true", help="skip the Ray 1-vs-2 CPU runs")
    parser.add_argument(
        "--scale-out-only", type=int, default=0, help="only the Ray runs, on this many documents"
    )
    parser.add_argument(
        "--baseline-max", type=int, default=BASELINE_MAX, help="largest corpus datatrove runs on"
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results = []
    scaled = None
    if args.scale_out_only:  # check the scale-out runs alone, on a small corpus
        with tempfile.TemporaryDirectory(prefix="near-dedup-bench-") as tmp:
            data = _run_child("generate", tmp, args.scale_out_only)
            print(json.dumps(scale_out(Path(data["path"]), args.scale_out_only, Path(tmp))))
        return
    for documents in sorted(args.documents):
        with tempfile.TemporaryDirectory(prefix="near-dedup-bench-") as tmp:
            folder = Path(tmp)
            data = _run_child("generate", folder, documents)
            corpus = Path(data["path"])
            baseline = _run_child("datatrove", corpus, folder) if documents <= args.baseline_max else None
            results.append(
                {
                    "documents": documents,
                    "data": data,
                    "datatrove": baseline,
                    "forge": _run_child("forge", corpus, folder),
                }
            )
            print(
                json.dumps({k: v for k, v in results[-1].items() if k != "data"}, default=str)[:400],
                flush=True,
            )
            if documents == SCALE_OUT_SIZE and not args.no_scale_out:
                scaled = scale_out(corpus, documents, folder)
    section = table(results, scaled, load_before)
    print(section)
    if args.write:
        _write_section(section)


if __name__ == "__main__":
    main()
