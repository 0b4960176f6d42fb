"""Getting data into a dataset: upload throughput and memory, manifest hashing, a 100 000-small-file import.

Runs against the stack started by `forge stack up` (MinIO, Postgres, Kafka, Temporal, Keycloak), with the
scheduler (the directory of callers' roles) started if it is not running, as the demo user in the demo
tenant. Starts its own dataset service process on a free port with its own task queue, so a running
platform is not disturbed and the resident set sampled is the process doing the work. Three
measurements, each side by side with a baseline on the same files in the same run:

1. **Upload** of one `--upload-mib` (2 048) MiB file of random bytes, through the API as a client would,
   against **raw aioboto3 multipart** of the same file to the same MinIO (parts of the service's part
   size, one after another, no hashing: the floor for getting those bytes into S3 from Python):
   - `PUT .../files/{name}`: the body streamed to the service, which hashes it and writes it in place;
   - resumable: `POST .../uploads`, the parts `PUT` one after another, `POST .../complete` (which reads
     the file back to check it).
   The service's resident set (VmRSS of its process, every 50 ms) is sampled during each upload; growth
   is the peak minus the value just before it.
2. **Manifest hashing**: the scanner every upload and import feeds (`forge_dataset.formats`, sha256 +
   size + signature), over 64 files of 16 MiB read in the service's 8 MiB parts, against `sha256sum` on
   the same files (page cache warm for both: each is run once before timing, the fastest of 3 kept).
3. **100 000 small files** (2 KiB PNG-signed blobs): imported as one zip through `?expand=true` (the
   expand task: read, scan, write each to MinIO, one transaction for all rows), files/s from the upload's
   start to the task's success; `sha256sum` over the same files extracted on local disk is the baseline,
   and forge's scanner over those local files the third column (the hashing share of the import).

Prints a Markdown table; `--write` also replaces the dataset-ingest section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aioboto3
import httpx
from forge_cli.demo import sign_in_demo
from forge_cli.services import Platform, ServiceProcess, service_port
from forge_cli.stack import Stack
from forge_kit.stack_env import StackSettings, load_stack_settings, read_env_file
from forge_sdk.auth import SignedIn
from report import write_section

PART = 8 * 1024 * 1024
BUCKET = "forge-datasets"
"""The service's bucket (its default): the baseline writes to the same MinIO bucket."""
PNG = b"\x89PNG\r\n\x1a\n"
HASH_FILES, HASH_FILE_MIB = 64, 16
SMALL_FILES, SMALL_BYTES = 100_000, 2048
HEADING = "## Datasets: uploads, manifest hashing, small-file imports (`bench/dataset_ingest.py`)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _signed_in(env: dict[str, str]) -> Callable[[httpx.Request], httpx.Request]:
    """The demo user in the demo tenant (created as `forge demo` does), as an httpx auth that renews the
    token when it is about to expire (the whole run takes longer than a token lives)."""

    async def sign_in() -> SignedIn:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service_port('scheduler')}") as scheduler:
            user, _ = await sign_in_demo(env, scheduler)
            return user

    session = asyncio.run(sign_in())

    def auth(request: httpx.Request) -> httpx.Request:
        request.headers.update(dict(session))
        return request

    return auth


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class RssSampler:
    """The peak resident set of a process while a block runs, sampled every 50 ms from a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, _rss(self.pid))

    def __enter__(self) -> RssSampler:
        self.before = self.peak = _rss(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss(self.pid))

    @property
    def growth(self) -> int:
        return self.peak - self.before


def _random_file(path: Path, size: int) -> None:
    block = os.urandom(PART)
    with path.open("wb") as out:
        written = 0
        while written < size:
            # each part differs (a counter in front) so nothing upstream can deduplicate parts
            piece = (written.to_bytes(8, "big") + block[8:])[: size - written]
            out.write(piece)
            written += len(piece)


def _chunks(path: Path, size: int = 1024 * 1024) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(size):
            yield chunk


# --- 1. upload ---------------------------------------------------------------------------------------


async def _raw_multipart(settings: StackSettings, path: Path, key: str) -> float:
    session = aioboto3.Session()
    async with session.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key.get_secret_value(),
        region_name=settings.s3_region,
    ) as s3:
        with contextlib.suppress(Exception):
            await s3.create_bucket(Bucket=BUCKET)
        begin = time.perf_counter()
        upload = await s3.create_multipart_upload(Bucket=BUCKET, Key=key)
        parts = []
        with path.open("rb") as file:
            number = 1
            while part := await asyncio.to_thread(file.read, PART):
                sent = await s3.upload_part(
                    Bucket=BUCKET,
                    Key=key,
                    UploadId=upload["UploadId"],
                    PartNumber=number,
                    Body=part,
                )
                parts.append({"PartNumber": number, "ETag": sent["ETag"]})
                number += 1
        await s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": parts},
        )
        took = time.perf_counter() - begin
        await s3.delete_object(Bucket=BUCKET, Key=key)
    return took


def _check(response: httpx.Response, *expected: int) -> Any:
    if response.status_code not in expected:
        sys.exit(
            f"{response.request.method} {response.request.url}: {response.status_code} {response.text[:400]}"
        )
    return response.json() if response.content else None


def _draft(http: httpx.Client, name: str) -> tuple[str, str]:
    dataset = _check(
        http.post(
            "/datasets",
            json={
                "name": name,
                "modality": "image",
                "secrecy": "internal",
                "licence": "CC-BY-4.0",
                "source": "bench/dataset_ingest.py",
            },
        ),
        201,
    )
    version = _check(http.post(f"/datasets/{dataset['id']}/versions"), 201)
    return dataset["id"], version["id"]


def _put_streamed(http: httpx.Client, path: Path, name: str) -> float:
    dataset, version = _draft(http, f"bench-upload-{uuid.uuid4().hex[:8]}")
    begin = time.perf_counter()
    _check(
        http.put(f"/datasets/{dataset}/versions/{version}/files/{name}", content=_chunks(path), timeout=None),
        200,
        201,
    )
    return time.perf_counter() - begin


def _put_resumable(http: httpx.Client, path: Path, name: str) -> float:
    dataset, version = _draft(http, f"bench-resumable-{uuid.uuid4().hex[:8]}")
    base = f"/datasets/{dataset}/versions/{version}/uploads"
    size = path.stat().st_size
    begin = time.perf_counter()
    upload = _check(http.post(base, json={"name": name, "size_bytes": size, "part_bytes": PART}), 201)
    with path.open("rb") as file:
        number = 1
        while part := file.read(PART):
            _check(http.put(f"{base}/{upload['id']}/parts/{number}", content=part, timeout=None), 200)
            number += 1
    _check(http.post(f"{base}/{upload['id']}/complete", timeout=None), 200, 201)
    return time.perf_counter() - begin


# --- 2. hashing ----------------------------------------------------------------------------------------


def _forge_hash(paths: list[Path]) -> float:
    from forge_dataset import formats

    begin = time.perf_counter()
    for path in paths:
        scanner = formats.scanner_for(path.name)
        with path.open("rb") as file:
            while part := file.read(PART):
                scanner.feed(part)
        scanner.finish()
    return time.perf_counter() - begin


def _sha256sum(folder: Path) -> float:
    """`sha256sum` over every file under `folder`, as `find | xargs` would run it (batches of names)."""
    names = [str(path) for path in sorted(folder.rglob("*")) if path.is_file()]
    begin = time.perf_counter()
    for start in range(0, len(names), 5000):
        subprocess.run(["sha256sum", *names[start : start + 5000]], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - begin


def _fastest(run: Callable[[], float], repeat: int) -> float:
    run()  # warm the page cache and the code
    return min(run() for _ in range(repeat))


# --- 3. small files ------------------------------------------------------------------------------------


def _small_files(folder: Path, count: int) -> bytes:
    """Write `count` small PNG-signed blobs under `folder` (in sub-folders of 1 000) and return them
    zipped (stored: random bytes do not compress)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for i in range(count):
            name = f"images/{i // 1000:03d}/img-{i:06d}.png"
            data = PNG + i.to_bytes(8, "big") + os.urandom(SMALL_BYTES - len(PNG) - 8)
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            archive.writestr(name, data)
    return buffer.getvalue()


def _import_archive(http: httpx.Client, archive: bytes) -> tuple[float, dict[str, Any]]:
    dataset, version = _draft(http, f"bench-small-{uuid.uuid4().hex[:8]}")
    begin = time.perf_counter()
    task = _check(
        http.put(
            f"/datasets/{dataset}/versions/{version}/files/images.zip",
            params={"expand": "true"},
            content=archive,
            timeout=None,
        ),
        202,
    )
    while task["state"] not in ("succeeded", "failed", "cancelled"):
        time.sleep(0.5)
        task = _check(http.get(f"/datasets/{dataset}/tasks/{task['id']}"), 200)
    took = time.perf_counter() - begin
    if task["state"] != "succeeded":
        sys.exit(f"the expand task {task['state']}: {task.get('error')}")
    found = _check(http.get(f"/datasets/{dataset}/versions/{version}"), 200)
    return took, found


# --- the run -------------------------------------------------------------------------------------------


def measure(upload_mib: int, small_files: int, repeat: int) -> str:
    stack = Stack()
    env = read_env_file(stack.env_file)
    if not env.get("FORGE_OIDC_ISSUER"):
        sys.exit("the stack's env file names no OIDC issuer: run `forge stack up` first")
    settings = load_stack_settings(stack.env_file)
    port = _free_port()
    os.environ["FORGE_DATASET_PORT"] = str(port)
    os.environ["FORGE_TASK_QUEUE"] = f"forge-dataset-bench-{uuid.uuid4().hex[:8]}"
    service = ServiceProcess(stack, "dataset", instance="ingest-bench-dataset")
    rows: list[str] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="forge-ingest-bench-") as tmp:
        work = Path(tmp)
        directory = Platform(stack, only=["scheduler"])  # resolves callers' roles (started if not running)
        started = [s for s in directory.services if not s.running()]
        try:
            directory.up()
            service.prepare()
            service.launch()
            deadline = time.monotonic() + 120
            while not service.healthy():
                if time.monotonic() > deadline or not service.running():
                    sys.exit(f"the bench's dataset service did not start: see {service.log_path}")
                time.sleep(0.5)
            pid = service.pid()
            assert pid is not None
            auth = _signed_in(env)
            with httpx.Client(base_url=service.endpoints()["http"], auth=auth, timeout=120) as http:
                rows += _upload_rows(http, settings, work, upload_mib, pid, repeat, notes)
                rows += _hash_rows(work, repeat, notes)
                rows += _small_rows(http, work, small_files, pid, notes)
        finally:
            service.stop()
            for other in started:
                other.stop()
    load = os.getloadavg()
    table = [
        "| measure | baseline | forge | forge / baseline | target |",
        "|---|---:|---:|---:|---|",
        *rows,
    ]
    return (
        "\n".join(table)
        + "\n\n"
        + "\n".join(f"- {note}" for note in notes)
        + f"\n\nLoad average {load[0]:.1f} (1 min) after the run, on {os.cpu_count()} cores; client, service "
        "and MinIO share them.\n"
    )


def _upload_rows(
    http: httpx.Client, settings: StackSettings, work: Path, mib: int, pid: int, repeat: int, notes: list[str]
) -> list[str]:
    path = work / "upload.bin"
    _random_file(path, mib * 1024 * 1024)
    size = path.stat().st_size
    raw: list[float] = []
    streamed: list[float] = []
    resumable: list[float] = []
    growth = {"streamed": 0, "resumable": 0}
    for i in range(repeat):  # interleaved, so both see the same machine
        raw.append(asyncio.run(_raw_multipart(settings, path, f"bench/raw-{uuid.uuid4().hex}")))
        with RssSampler(pid) as rss:
            streamed.append(_put_streamed(http, path, f"upload-{i}.bin"))
        growth["streamed"] = max(growth["streamed"], rss.growth)
        with RssSampler(pid) as rss:
            resumable.append(_put_resumable(http, path, f"resumable-{i}.bin"))
        growth["resumable"] = max(growth["resumable"], rss.growth)
    mb = size / 1024**2
    best_raw, best_streamed, best_resumable = min(raw), min(streamed), min(resumable)
    notes.append(
        f"Upload of {mb:,.0f} MiB, fastest of {repeat}: raw aioboto3 {', '.join(f'{t:.1f}' for t in raw)} s; "
        f"streamed PUT {', '.join(f'{t:.1f}' for t in streamed)} s; resumable "
        f"{', '.join(f'{t:.1f}' for t in resumable)} s. RSS growth is the largest of the runs."
    )
    return [
        f"| upload {mb:,.0f} MiB, streamed `PUT` (MiB/s) | {mb / best_raw:,.0f} (raw aioboto3 multipart) "
        f"| {mb / best_streamed:,.0f} | **{best_raw / best_streamed:.2f}x** | ≥ 0.9x |",
        f"| upload {mb:,.0f} MiB, resumable parts + complete (MiB/s) | {mb / best_raw:,.0f} "
        f"| {mb / best_resumable:,.0f} | **{best_raw / best_resumable:.2f}x** | (reads back) |",
        f"| service RSS growth during the streamed upload | | {growth['streamed'] / 1024**2:,.0f} MiB | "
        "| < 100 MiB |",
        f"| service RSS growth during the resumable upload | | {growth['resumable'] / 1024**2:,.0f} MiB | "
        "| < 100 MiB |",
    ]


def _hash_rows(work: Path, repeat: int, notes: list[str]) -> list[str]:
    folder = work / "hashing"
    folder.mkdir()
    paths = []
    for i in range(HASH_FILES):
        path = folder / f"shard-{i:03d}.bin"
        _random_file(path, HASH_FILE_MIB * 1024 * 1024)
        paths.append(path)
    mb = HASH_FILES * HASH_FILE_MIB
    forge = _fastest(lambda: _forge_hash(paths), repeat)
    baseline = _fastest(lambda: _sha256sum(folder), repeat)
    version = subprocess.run(["sha256sum", "--version"], capture_output=True, text=True).stdout.splitlines()[
        0
    ]
    notes.append(
        f"Hashing: {HASH_FILES} files of {HASH_FILE_MIB} MiB; `{version}`; Python's hashlib "
        f"({hashlib.sha256().name}, OpenSSL) inside the scanner."
    )
    return [
        f"| manifest hashing, {mb:,} MiB in {HASH_FILES} files (MiB/s) | {mb / baseline:,.0f} (`sha256sum`) "
        f"| {mb / forge:,.0f} | **{baseline / forge:.2f}x** | ≥ 0.8x |"
    ]


def _small_rows(http: httpx.Client, work: Path, count: int, pid: int, notes: list[str]) -> list[str]:
    folder = work / "small"
    folder.mkdir()
    archive = _small_files(folder, count)
    paths = sorted(folder.rglob("*.png"))
    baseline = _fastest(lambda: _sha256sum(folder), 1)
    hashing = _fastest(lambda: _forge_hash(paths), 1)
    with RssSampler(pid) as rss:
        took, version = _import_archive(http, archive)
    if len(version["files"]) != count:
        sys.exit(f"the import holds {len(version['files'])} files, not {count}")
    notes.append(
        f"Small files: {count:,} files of {SMALL_BYTES} bytes in a {len(archive) / 1024**2:,.0f} MiB zip; "
        f"the import took {took:.1f} s from the upload's first byte to the task's success (upload, expand: "
        f"{count:,} objects written to MinIO, {count:,} rows in one transaction); service RSS grew "
        f"{rss.growth / 1024**2:,.0f} MiB. Forge's scanner alone over the local files: "
        f"{count / hashing:,.0f} files/s."
    )
    return [
        f"| {count:,}-small-file import (files/s) | {count / baseline:,.0f} (`sha256sum`, local files) "
        f"| {count / took:,.0f} | **{baseline / took:.2f}x** | recorded |",
    ]


def _write_section(table: str) -> None:
    write_section("dataset-ingest", "dataset_ingest.py", table, heading=HEADING)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upload-mib", type=int, default=2048, help="size of the uploaded file")
    parser.add_argument("--small-files", type=int, default=SMALL_FILES, help="files in the small-file import")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each upload and hash")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    table = measure(args.upload_mib, args.small_files, args.repeat)
    print(table)
    if args.write:
        _write_section(table)


if __name__ == "__main__":
    main()
