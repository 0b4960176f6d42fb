"""Use cases of uploads: a file streamed in one request, or a resumable upload in parts.

Either way the bytes are written once, straight to their permanent place in the bucket (an upload key
under the tenant's blobs): the streamed upload is scanned part by part as it arrives, a resumable one
once it is complete, by reading it back. A file whose bytes the tenant already holds (same sha256 and
size) is not kept twice: the new object is deleted and the version's file points at the existing one.
A file that fails its checks is deleted; nothing is added to the version until it passed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable
from typing import Any

from forge_contracts.envelope import uuid7
from forge_kit.auth import Principal
from forge_kit.errors import Conflict, NotFound, Unprocessable
from sqlmodel import col, select

from forge_dataset import domain, formats
from forge_dataset.deps import Deps
from forge_dataset.events import VERSION, move_version, now
from forge_dataset.rows import version_row
from forge_dataset.tables import DatasetVersion, Upload, VersionFile

MAX_PARTS = 10_000
"""S3's limit on the parts of one multipart upload."""
MIN_PART_BYTES = 5 * 1024**2
MAX_PART_BYTES = 512 * 1024**2


def check_can_upload(found: DatasetVersion) -> None:
    if found.state != "uploading":
        VERSION.transition(found.state, "start_upload")  # raises IllegalTransition (409) unless draft


def upload_key(tenant: str) -> str:
    """Where an upload's bytes are written: their permanent place unless the same bytes exist already."""
    return f"tenants/{tenant}/blobs/uploads/{uuid7()}"


async def place(deps: Deps, tenant: str, key: str, scanner: formats.Scanner) -> str:
    """The key the version's file should point at: an object of the tenant's holding the same bytes
    (then the new object at `key` is deleted), or `key`."""
    candidates = [domain.blob_key(tenant, scanner.sha256)]
    async with deps.db.session() as session:
        query = (
            select(VersionFile.object_key)
            .join(DatasetVersion, col(DatasetVersion.id) == col(VersionFile.version_id))
            .where(
                DatasetVersion.tenant == tenant,
                VersionFile.sha256 == scanner.sha256,
                VersionFile.size_bytes == scanner.size_bytes,
            )
            .limit(1)
        )
        candidates += list((await session.exec(query)).all())
    for candidate in candidates:
        if candidate != key and await deps.store.size(candidate) == scanner.size_bytes:
            await deps.store.delete(key)
            return candidate
    return key


async def add_file(
    deps: Deps,
    caller: Principal,
    dataset_id: str,
    version_id: str,
    name: str,
    scanner: formats.Scanner,
    key: str,
) -> VersionFile:
    """The scanned file, stored at `key`, becomes (or replaces) the version's file `name`. If the version
    can no longer take it, the object is deleted (unless it is an earlier file's) and 409 raised."""
    try:
        async with deps.db.transaction() as session:
            found = await version_row(session, caller, dataset_id, version_id, lock=True)
            check_can_upload(found)
            if found.state == "draft":
                staging_uri = deps.store.uri(domain.staging_prefix(caller.tenant_id, version_id))
                await move_version(session, found, "start_upload", caller.actor, staging_uri=staging_uri)
            file = await session.get(VersionFile, (version_id, name))
            file = file or VersionFile(
                version_id=version_id, name=name, object_key=key, sha256="", size_bytes=0, record_count=0
            )
            file.object_key, file.sha256 = key, scanner.sha256
            file.size_bytes, file.record_count = scanner.size_bytes, scanner.records
            file.format, file.media_type = scanner.format, scanner.media_type
            file.stats = scanner.stats.to_json() if scanner.format else None
            file.uploaded_at = now()
            session.add(file)
    except BaseException:
        if "/blobs/uploads/" in key:
            await deps.store.delete(key)
        raise
    return file


async def upload_file(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str, name: str, body: AsyncIterable[bytes]
) -> VersionFile:
    """Stream one file into the version: checked as it arrives (every record of a JSONL, CSV or Parquet
    file; a media file's signature), multipart-uploaded in place. A bad record or a file that is not
    what its name says aborts the upload (422): nothing is written."""
    async with deps.db.session() as session:
        check_can_upload(await version_row(session, caller, dataset_id, version_id))
    scanner = formats.scanner_for(name, deps.work_dir)
    key = upload_key(caller.tenant_id)

    async def scan(part: bytes) -> None:
        await asyncio.to_thread(scanner.feed, part)

    async def finish() -> None:
        scanner.finish()

    try:
        await deps.store.write_stream(key, body, on_part=scan, on_end=finish)
    except domain.InvalidRecords as error:
        raise Unprocessable(str(error)) from None
    key = await place(deps, caller.tenant_id, key, scanner)
    return await add_file(deps, caller, dataset_id, version_id, name, scanner, key)


# --- resumable uploads ------------------------------------------------------------------------------


async def _upload_row(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str, upload_id: str, *, lock: bool = False
) -> Upload:
    async with deps.db.session() as session:
        await version_row(session, caller, dataset_id, version_id)
    async with deps.db.session() as session:
        query = select(Upload).where(
            Upload.id == upload_id,
            Upload.tenant == caller.tenant_id,
            Upload.dataset_id == dataset_id,
            Upload.version_id == version_id,
        )
        found = (await session.exec(query)).first()
    if found is None:
        raise NotFound(f"upload {upload_id!r} of version {version_id!r} does not exist")
    return found


async def start(
    deps: Deps,
    caller: Principal,
    dataset_id: str,
    version_id: str,
    *,
    name: str,
    part_bytes: int,
    size_bytes: int | None,
    sha256: str | None,
) -> Upload:
    """A resumable upload of `name` into the draft version: send its parts, then complete it."""
    async with deps.db.session() as session:
        check_can_upload(await version_row(session, caller, dataset_id, version_id))
    if size_bytes is not None and size_bytes > part_bytes * MAX_PARTS:
        raise Unprocessable(f"{size_bytes} bytes need more than {MAX_PARTS} parts of {part_bytes} bytes")
    key = upload_key(caller.tenant_id)
    created = Upload(
        id=uuid7(),
        tenant=caller.tenant_id,
        dataset_id=dataset_id,
        version_id=version_id,
        name=name,
        object_key=key,
        s3_upload_id=await deps.store.start_multipart(key),
        part_bytes=part_bytes,
        size_bytes=size_bytes,
        sha256=sha256,
        created_by=caller.actor,
    )
    async with deps.db.transaction() as session:
        session.add(created)
    return created


async def status(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str, upload_id: str
) -> tuple[Upload, list[dict[str, Any]]]:
    """The upload and, while it is open, the parts received so far (number and size)."""
    found = await _upload_row(deps, caller, dataset_id, version_id, upload_id)
    if found.state != "open":
        return found, []
    parts = await deps.store.parts(found.object_key, found.s3_upload_id)
    return found, [{"number": int(p["PartNumber"]), "size_bytes": int(p["Size"])} for p in parts]


def _open(found: Upload) -> None:
    if found.state != "open":
        raise Conflict(f"upload {found.id!r} is {found.state}: it takes no more parts")


async def put_part(
    deps: Deps,
    caller: Principal,
    dataset_id: str,
    version_id: str,
    upload_id: str,
    number: int,
    body: AsyncIterable[bytes],
) -> dict[str, Any]:
    """Receive part `number` (1-based): exactly `part_bytes` long except the last. Sending a part again
    replaces it, so an interrupted part is simply resent."""
    found = await _upload_row(deps, caller, dataset_id, version_id, upload_id)
    _open(found)
    data = bytearray()
    async for chunk in body:
        data += chunk
        if len(data) > found.part_bytes:
            raise Unprocessable(
                f"part {number} is longer than the upload's part size, {found.part_bytes} bytes"
            )
    if not data:
        raise Unprocessable(f"part {number} is empty")
    if found.size_bytes is not None:
        last = max(1, -(-found.size_bytes // found.part_bytes))
        expected = found.part_bytes if number < last else found.size_bytes - (last - 1) * found.part_bytes
        if number > last or len(data) != expected:
            raise Unprocessable(
                f"part {number} of a {found.size_bytes}-byte upload must be {max(expected, 0)} bytes,"
                f" not {len(data)}"
            )
    await deps.store.put_part(found.object_key, found.s3_upload_id, number, bytes(data))
    return {"number": number, "size_bytes": len(data)}


async def _claim(deps: Deps, caller: Principal, upload_id: str, state: str) -> Upload:
    """Move an open upload to `state` (completing, aborted): one caller wins, the others get 409."""
    async with deps.db.transaction() as session:
        query = (
            select(Upload).where(Upload.id == upload_id, Upload.tenant == caller.tenant_id).with_for_update()
        )
        found = (await session.exec(query)).one()
        _open(found)
        found.state = state
        if state != "completing":
            found.ended_at = now()
        session.add(found)
        return found


async def _end(deps: Deps, upload_id: str, state: str, error: str | None = None) -> None:
    async with deps.db.transaction() as session:
        found = await session.get(Upload, upload_id)
        if found is not None:
            found.state, found.error, found.ended_at = state, error, now()
            session.add(found)


def _missing(parts: list[dict[str, Any]], found: Upload) -> str | None:
    numbers = [int(p["PartNumber"]) for p in parts]
    if not numbers:
        return "no part was received"
    wanted = range(1, max(numbers) + 1)
    if found.size_bytes is not None:
        wanted = range(1, max(1, -(-found.size_bytes // found.part_bytes)) + 1)
    missing = sorted(set(wanted) - set(numbers))
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        return f"parts {shown} have not been received"
    short = [int(p["PartNumber"]) for p in parts[:-1] if int(p["Size"]) != found.part_bytes]
    if short:
        return f"parts {short[:20]} are shorter than the part size (only the last part may be)"
    return None


async def complete(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str, upload_id: str
) -> VersionFile:
    """Join the parts, check the file (its records or signature, the announced size and sha256) by
    reading it back, and add it to the version. Missing parts are a 422 that leaves the upload open;
    a file that fails its checks is deleted and the upload failed."""
    found = await _upload_row(deps, caller, dataset_id, version_id, upload_id)
    _open(found)
    parts = await deps.store.parts(found.object_key, found.s3_upload_id)
    if (problem := _missing(parts, found)) is not None:
        raise Unprocessable(f"upload {upload_id!r} is not complete: {problem}")
    await _claim(deps, caller, upload_id, "completing")
    try:
        await deps.store.complete_multipart(found.object_key, found.s3_upload_id, parts)
        scanner = formats.scanner_for(found.name, deps.work_dir)
        async with contextlib.aclosing(deps.store.read(found.object_key)) as chunks:
            async for chunk in chunks:
                await asyncio.to_thread(scanner.feed, chunk)
        scanner.finish()
        if found.size_bytes is not None and scanner.size_bytes != found.size_bytes:
            raise domain.InvalidRecords(
                found.name, 1, f"{scanner.size_bytes} bytes arrived, not {found.size_bytes}"
            )
        if found.sha256 is not None and scanner.sha256 != found.sha256:
            raise domain.InvalidRecords(found.name, 1, f"the sha256 is {scanner.sha256}, not {found.sha256}")
    except domain.InvalidRecords as error:
        await deps.store.delete(found.object_key)
        await _end(deps, upload_id, "failed", str(error))
        raise Unprocessable(str(error)) from None
    except BaseException:
        await deps.store.abort_multipart(found.object_key, found.s3_upload_id)
        await deps.store.delete(found.object_key)
        await _end(deps, upload_id, "failed", "the upload could not be completed")
        raise
    key = await place(deps, caller.tenant_id, found.object_key, scanner)
    try:
        file = await add_file(deps, caller, dataset_id, version_id, found.name, scanner, key)
    except BaseException:
        await _end(deps, upload_id, "failed", "the version no longer takes files")
        raise
    await _end(deps, upload_id, "completed")
    return file


async def abort(deps: Deps, caller: Principal, dataset_id: str, version_id: str, upload_id: str) -> Upload:
    """Drop an open upload and the parts it received."""
    found = await _upload_row(deps, caller, dataset_id, version_id, upload_id)
    aborted = await _claim(deps, caller, found.id, "aborted")
    await deps.store.abort_multipart(found.object_key, found.s3_upload_id)
    return aborted
