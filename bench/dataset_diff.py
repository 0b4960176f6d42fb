"""Row-level diff of two dataset versions: time, peak memory and spill disk of the streamed diff.

Two JSONL versions are generated on local disk (temporary folder), one record a line:
{"id": i, "text": "<about 80 characters>", "label": one of 4, "score": float}. The new version has 1 %
of the base's records changed (text, label or score), 0.5 % removed, 0.5 % added, and a fifth of the
file (the middle block) in shuffled order, so a diff that depends on row order would fail.

Both diffs run on the same files, each in its own fresh process (`sys.executable` on this script), and
report the work's wall time and the process's peak resident set:
- baseline: the obvious in-memory diff: read both files, `json.loads` every line into a dict
  id -> record per version, then compare the key sets and the records under common keys;
- forge: `forge_dataset.diff.domain.Differ` keyed on `id`, fed the files in 8 MiB chunks (what the
  service reads from S3), then comparing partition by partition; spill disk is the partition files'
  size once both versions are fed.
Both run at 100 000 and 1 000 000 records, so the table shows how peak memory grows with size, each
`--repeat` times (3), interleaved; the fastest run's time is reported (the machine is shared).
Their counts (added, removed, changed, unchanged) must agree with each other and with the generator's.

Peak RSS is the child's `VmHWM` (/proc/self/status), its own address space's high-water mark since
exec: on Linux `ru_maxrss` of an exec'd child also counts the parent's resident set at fork, which would
put a floor under small figures. The child reports `ru_maxrss` too; it is printed with `--verbose`.
Prints a Markdown table; `--write` also replaces the dataset-diff section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report import write_section

CHUNK_BYTES = 8 * 1024 * 1024
SIZES = (100_000, 1_000_000)
LABELS = ("positive", "negative", "neutral", "mixed")
WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
    "quebec romeo sierra tango uniform victor whiskey xray yankee zulu model data token batch label"
).split()
CHANGED, REMOVED, ADDED = 0.01, 0.005, 0.005
SHUFFLED_FROM, SHUFFLED_TO = 0.4, 0.6
COUNTS = ("added", "removed", "changed", "unchanged")
HEADING = "## Datasets: row-level diff of two versions (`bench/dataset_diff.py`)"


# --- children: each runs in its own process and prints one JSON object -------------------------------


def _peak() -> dict[str, int]:
    """Peak resident set in bytes: VmHWM of this address space, and ru_maxrss (see module docstring)."""
    status = Path("/proc/self/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak_rss": int(found.group(1)) * 1024 if found else maxrss, "ru_maxrss": maxrss}


def _record(i: int, rng: random.Random) -> dict[str, Any]:
    text = f"{i:07d} " + " ".join(rng.choices(WORDS, k=14))
    return {"id": i, "text": text[:80], "label": rng.choice(LABELS), "score": round(rng.random(), 6)}


def _changed(record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    which = rng.randrange(3)
    if which == 0:
        return {**record, "text": record["text"][:70] + " (revised)"}
    if which == 1:
        return {**record, "label": LABELS[(LABELS.index(record["label"]) + 1) % len(LABELS)]}
    return {**record, "score": round(record["score"] + 0.5, 6)}


def generate(folder: Path, records: int) -> dict[str, Any]:
    """Write base.jsonl and version.jsonl into `folder`, streamed (only the shuffled block is held)."""
    content, roles = random.Random(1), random.Random(2)
    expected = dict.fromkeys(COUNTS, 0)
    shuffle_from, shuffle_to = int(records * SHUFFLED_FROM), int(records * SHUFFLED_TO)
    block: list[str] = []
    next_id = records
    with open(folder / "base.jsonl", "w") as base, open(folder / "version.jsonl", "w") as version:
        for i in range(records):
            record = _record(i, content)
            base.write(json.dumps(record) + "\n")
            lines: list[str] = []
            role = roles.random()
            if role < REMOVED:
                expected["removed"] += 1
            elif role < REMOVED + CHANGED:
                lines.append(json.dumps(_changed(record, roles)) + "\n")
                expected["changed"] += 1
            else:
                lines.append(json.dumps(record) + "\n")
                expected["unchanged"] += 1
            if roles.random() < ADDED:
                lines.append(json.dumps(_record(next_id, roles)) + "\n")
                next_id += 1
                expected["added"] += 1
            if shuffle_from <= i < shuffle_to:
                block.extend(lines)
                if i == shuffle_to - 1:
                    roles.shuffle(block)
                    version.writelines(block)
                    block.clear()
            else:
                version.writelines(lines)
    return {
        "expected": expected,
        "base_bytes": (folder / "base.jsonl").stat().st_size,
        "version_bytes": (folder / "version.jsonl").stat().st_size,
        "base_records": records,
        "version_records": records - expected["removed"] + expected["added"],
    }


def _load(path: Path) -> dict[Any, dict[str, Any]]:
    records: dict[Any, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as file:
        for line in file:
            if line.strip():
                record = json.loads(line)
                records[record["id"]] = record
    return records


def baseline(folder: Path) -> dict[str, Any]:
    """The obvious diff: both versions fully in memory as dicts id -> record."""
    started = time.perf_counter()
    base, version = _load(folder / "base.jsonl"), _load(folder / "version.jsonl")
    loaded = time.perf_counter()
    common = base.keys() & version.keys()
    changed = sum(1 for key in common if base[key] != version[key])
    counts = {
        "added": len(version.keys() - base.keys()),
        "removed": len(base.keys() - version.keys()),
        "changed": changed,
        "unchanged": len(common) - changed,
    }
    done = time.perf_counter()
    return {"counts": counts, "seconds": done - started, "load_s": loaded - started, **_peak()}


def forge(folder: Path, total_bytes: int, total_records: int) -> dict[str, Any]:
    """The service's diff: both versions streamed through Differ in 8 MiB chunks, keyed on `id`."""
    from forge_dataset.diff.domain import Differ, partitions_for

    work = Path(tempfile.mkdtemp(prefix="spill-", dir=folder))
    started = time.perf_counter()
    differ = Differ(work, partitions_for(total_bytes, total_records), key="id")
    for side, name in ((differ.base, "base.jsonl"), (differ.version, "version.jsonl")):
        side.start_file(name)
        with open(folder / name, "rb", buffering=0) as file:
            while chunk := file.read(CHUNK_BYTES):
                side.feed(chunk)
        side.end_file()
    differ.end_feeding()
    fed = time.perf_counter()
    spill = sum(
        path.stat().st_size for side in (differ.base, differ.version) for path in side.directory.iterdir()
    )
    fed_peak = _peak()["peak_rss"]
    for partition in range(differ.partitions):
        differ.compare(partition)
    differ.close()
    done = time.perf_counter()
    return {
        "counts": dict(differ.counts),
        "seconds": done - started,
        "feed_s": fed - started,
        "spill_bytes": spill,
        "partitions": differ.partitions,
        "fed_peak_rss": fed_peak,
        **_peak(),
    }


def _child(argv: list[str]) -> None:
    folder = Path(argv[1])
    if argv[0] == "generate":
        result = generate(folder, int(argv[2]))
    elif argv[0] == "baseline":
        result = baseline(folder)
    else:
        result = forge(folder, int(argv[2]), int(argv[3]))
    print(json.dumps(result))


# --- parent: small on purpose, it only starts the children and writes the table -----------------------


def _run_child(*args: object) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", *map(str, args)]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run's figures; peak RSS the highest seen (it barely varies from run to run)."""
    best = dict(min(runs, key=lambda run: run["seconds"]))
    best["peak_rss"] = max(run["peak_rss"] for run in runs)
    return best


def measure(records: int, repeat: int, verbose: bool) -> dict[str, Any]:
    """Generate the two versions, then run baseline and forge `repeat` times each, interleaved."""
    with tempfile.TemporaryDirectory(prefix="dataset-diff-") as tmp:
        data = _run_child("generate", tmp, records)
        total_bytes = data["base_bytes"] + data["version_bytes"]
        total_records = data["base_records"] + data["version_records"]
        runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "forge": []}
        for _ in range(repeat):
            runs["baseline"].append(_run_child("baseline", tmp))
            runs["forge"].append(_run_child("forge", tmp, total_bytes, total_records))
    for name, results in runs.items():
        for result in results:
            if result["counts"] != data["expected"]:
                sys.exit(
                    f"{records:,} records: {name} counted {result['counts']}, expected {data['expected']}"
                )
    if verbose:
        print(json.dumps({"records": records, "data": data, **runs}, indent=1))
    return {
        "records": records,
        "data": data,
        "baseline": _best(runs["baseline"]),
        "forge": _best(runs["forge"]),
    }


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def table(results: list[dict[str, Any]], repeat: int, load_before: float) -> str:
    rows = [
        "| measure | in-memory dict (baseline) | forge streamed | forge / baseline |",
        "|---|---:|---:|---:|",
    ]
    for r in results:
        b, f, n = r["baseline"], r["forge"], r["records"]
        rows.append(
            f"| wall time, {n:,} records | {b['seconds']:.1f} s | {f['seconds']:.1f} s "
            f"| **{f['seconds'] / b['seconds']:.2f}x** |"
        )
        rows.append(
            f"| peak RSS, {n:,} records | {_mib(b['peak_rss'])} | {_mib(f['peak_rss'])} "
            f"| **{f['peak_rss'] / b['peak_rss']:.2f}x** |"
        )
    small, large = results[0], results[-1]
    if len(results) > 1:
        grow = {side: large[side]["peak_rss"] / small[side]["peak_rss"] for side in ("baseline", "forge")}
        rows.append(
            f"| peak RSS growth, {small['records']:,} -> {large['records']:,} records "
            f"| {grow['baseline']:.1f}x | {grow['forge']:.1f}x | |"
        )
    rows.append(
        f"| spill disk, {large['records']:,} records | none | {_mib(large['forge']['spill_bytes'])} | |"
    )
    notes = []
    for r in results:
        data, f = r["data"], r["forge"]
        counts = ", ".join(f"{data['expected'][name]:,} {name}" for name in COUNTS)
        notes.append(
            f"{r['records']:,} records: versions of {_mib(data['base_bytes'])} and "
            f"{_mib(data['version_bytes'])}; {counts} (both diffs agree); forge used "
            f"{f['partitions']} partitions, fed both versions in {f['feed_s']:.1f} s "
            f"(peak {_mib(f['fed_peak_rss'])} by then), compared them in {f['seconds'] - f['feed_s']:.1f} s."
        )
    load = os.getloadavg()[0]
    return (
        "\n".join(rows)
        + "\n\n"
        + "\n".join(f"- {note}" for note in notes)
        + f"\n\nLoad average {load_before:.1f} before the run and {load:.1f} after it, on "
        f"{os.cpu_count()} cores; each diff run {repeat} times, interleaved: the fastest run's times, the "
        "highest peak RSS.\n"
    )


def _write_section(section: str) -> None:
    write_section(
        "dataset-diff",
        "dataset_diff.py",
        section,
        heading=HEADING,
        intro=(
            "Two JSONL versions generated on local disk: 1 % of the base's records changed, 0.5 %\n"
            "removed, 0.5 % added, the middle fifth of the new version shuffled. Each diff runs in its own\n"
            "process on the same files; peak RSS is that process's high-water mark (interpreter included,\n"
            "nothing subtracted), wall time is the diff's own work (after start-up and imports), the\n"
            "fastest of 3 interleaved runs.\n"
            "- **in-memory dict (baseline):** read both files, `json.loads` each line into a dict\n"
            "  id -> record per version, compare key sets and the records under common keys.\n"
            "- **forge streamed:** `forge_dataset.diff.domain.Differ` keyed on `id`, fed 8 MiB chunks\n"
            "  (as the service reads them from S3): each record is parsed (orjson), digested and spilled\n"
            "  to one of P partition files on local disk, then each partition is compared on its own.\n\n"
        ),
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--records", type=int, nargs="+", default=list(SIZES), help="version sizes to diff, smallest first"
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each diff per size (best time kept)")
    parser.add_argument("--verbose", action="store_true", help="print every child's raw result")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results = [measure(records, args.repeat, args.verbose) for records in sorted(args.records)]
    section = table(results, args.repeat, load_before)
    print(section)
    if args.write:
        _write_section(section)


if __name__ == "__main__":
    main()
