"""Use cases of the dataset service: one function per command, each change and its events in one
transaction through the outbox. Object storage I/O happens outside transactions, before the change that
makes it visible, so a failed request leaves no half-written version behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterable, Sequence
from typing import Any

from forge_contracts.activities.dataset import ManifestFile, PublishDerivedVersion
from forge_contracts.envelope import uuid7
from forge_contracts.events.dataset import DatasetVersionCreated
from forge_kit.auth import Principal
from forge_kit.errors import Conflict, NotFound, Unprocessable
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_dataset import domain
from forge_dataset.aliases import service as aliases
from forge_dataset.deps import Deps
from forge_dataset.events import VERSION, emit, move_version, now
from forge_dataset.objects import ObjectStore
from forge_dataset.rows import dataset_row, version_files, version_row
from forge_dataset.schemas import DatasetCreate
from forge_dataset.statistics.domain import FileStats, inferred_schema, schema_violations
from forge_dataset.tables import Dataset, DatasetVersion, VersionFile

READABLE = ("published", "deprecated")


# --- reads ------------------------------------------------------------------------------------------


async def datasets(deps: Deps, caller: Principal) -> list[Dataset]:
    async with deps.db.session() as session:
        query = select(Dataset).where(Dataset.tenant == caller.tenant_id).order_by(col(Dataset.id))
        return list((await session.exec(query)).all())


async def dataset(deps: Deps, caller: Principal, dataset_id: str) -> Dataset:
    async with deps.db.session() as session:
        return await dataset_row(session, caller, dataset_id)


async def versions(deps: Deps, caller: Principal, dataset_id: str) -> list[DatasetVersion]:
    async with deps.db.session() as session:
        await dataset_row(session, caller, dataset_id)
        query = (
            select(DatasetVersion)
            .where(DatasetVersion.dataset_id == dataset_id, DatasetVersion.tenant == caller.tenant_id)
            .order_by(col(DatasetVersion.number))
        )
        return list((await session.exec(query)).all())


async def version(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str
) -> tuple[DatasetVersion, list[VersionFile]]:
    async with deps.db.session() as session:
        found = await version_row(session, caller, dataset_id, version_id)
        return found, await version_files(session, version_id)


async def lineage(deps: Deps, caller: Principal, dataset_id: str, version_id: str) -> list[DatasetVersion]:
    """The version, then its parent, and so on back to the version with no parent (the raw data)."""
    async with deps.db.session() as session:
        current: DatasetVersion | None = await version_row(session, caller, dataset_id, version_id)
        chain: list[DatasetVersion] = []
        while current is not None and current.id not in {v.id for v in chain}:
            chain.append(current)
            if current.parent_version_id is None:
                break
            query = select(DatasetVersion).where(
                DatasetVersion.id == current.parent_version_id, DatasetVersion.tenant == caller.tenant_id
            )
            current = (await session.exec(query)).first()
        return chain


async def preview(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str, limit: int
) -> tuple[Dataset, DatasetVersion, list[VersionFile], list[dict[str, Any]]]:
    """The first `limit` records of a text version, in file-name order; none for other modalities."""
    async with deps.db.session() as session:
        owner = await dataset_row(session, caller, dataset_id)
        found = await version_row(session, caller, dataset_id, version_id)
        files = await version_files(session, version_id)
    shown: list[dict[str, Any]] = []
    if owner.modality != domain.Modality.text:
        return owner, found, files, shown
    for file in files:
        pending = b""
        async with contextlib.aclosing(deps.store.read(file.object_key)) as chunks:
            async for chunk in chunks:
                *lines, pending = (pending + chunk).split(b"\n")
                shown += [json.loads(line) for line in lines if line.strip()][: limit - len(shown)]
                if len(shown) >= limit:
                    return owner, found, files, shown
        if pending.strip():
            shown.append(json.loads(pending))
        if len(shown) >= limit:
            break
    return owner, found, files, shown[:limit]


# --- datasets and versions --------------------------------------------------------------------------


async def create_dataset(deps: Deps, caller: Principal, body: DatasetCreate) -> Dataset:
    created = Dataset(
        id=uuid7(),
        tenant=caller.tenant_id,
        name=body.name,
        description=body.description,
        modality=body.modality.value,
        secrecy=body.secrecy.value,
        licence=body.licence,
        source=body.source,
        schema_hint=body.schema_hint,
        created_by=caller.actor,
    )
    try:
        async with deps.db.transaction() as session:
            session.add(created)
    except IntegrityError:
        raise Conflict(f"a dataset named {body.name!r} already exists") from None
    return created


async def _new_version(
    session: AsyncSession,
    owner: Dataset,
    actor: str | None,
    *,
    source: str,
    parent_version_id: str | None = None,
    operation: str | None = None,
    parameters: dict[str, Any] | None = None,
    request_key: str | None = None,
) -> DatasetVersion:
    """A draft version of `owner` (which the caller has locked) and its created event."""
    owner.version_count += 1
    session.add(owner)
    created = DatasetVersion(
        id=uuid7(),
        tenant=owner.tenant,
        dataset_id=owner.id,
        number=owner.version_count,
        state=VERSION.initial,
        source=source,
        parent_version_id=parent_version_id,
        operation=operation,
        parameters=parameters or {},
        request_key=request_key,
        created_by=actor,
    )
    session.add(created)
    await emit(
        session,
        created,
        DatasetVersionCreated.event_type,
        tenant_id=owner.tenant,
        occurred_at=now(),
        actor=actor,
        version_id=created.id,
        dataset_id=owner.id,
        version=created.number,
        source=source,
        parent_version_id=parent_version_id,
    )
    return created


async def create_version(deps: Deps, caller: Principal, dataset_id: str) -> DatasetVersion:
    async with deps.db.transaction() as session:
        owner = await dataset_row(session, caller, dataset_id, lock=True)
        return await _new_version(session, owner, caller.actor, source="upload")


def _check_can_upload(found: DatasetVersion) -> None:
    if found.state != "uploading":
        VERSION.transition(found.state, "start_upload")  # raises IllegalTransition (409) unless draft


async def upload_file(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str, name: str, body: AsyncIterable[bytes]
) -> VersionFile:
    """Stream one JSONL file into the version: validated line by line as it arrives, multipart-uploaded
    to staging, then copied to its content-addressed key. A bad line aborts the upload (422)."""
    async with deps.db.session() as session:
        _check_can_upload(await version_row(session, caller, dataset_id, version_id))
    scanner = domain.JsonlScanner(name)
    staging_key = domain.staging_prefix(caller.tenant_id, version_id) + uuid7()

    async def scan(part: bytes) -> None:
        await asyncio.to_thread(scanner.feed, part)

    async def finish() -> None:
        scanner.finish()

    try:
        await deps.store.write_stream(staging_key, body, on_part=scan, on_end=finish)
    except domain.InvalidRecords as error:
        raise Unprocessable(str(error)) from None
    key = domain.blob_key(caller.tenant_id, scanner.sha256)
    try:
        if await deps.store.size(key) != scanner.size_bytes:
            await deps.store.copy(staging_key, key, scanner.size_bytes)
    finally:
        await deps.store.delete(staging_key)
    async with deps.db.transaction() as session:
        found = await version_row(session, caller, dataset_id, version_id, lock=True)
        _check_can_upload(found)
        if found.state == "draft":
            staging_uri = deps.store.uri(domain.staging_prefix(caller.tenant_id, version_id))
            await move_version(session, found, "start_upload", caller.actor, staging_uri=staging_uri)
        file = await session.get(VersionFile, (version_id, name))
        file = file or VersionFile(
            version_id=version_id, name=name, object_key=key, sha256="", size_bytes=0, record_count=0
        )
        file.object_key, file.sha256 = key, scanner.sha256
        file.size_bytes, file.record_count = scanner.size_bytes, scanner.records
        file.stats = scanner.stats.to_json()
        file.uploaded_at = now()
        session.add(file)
    return file


def _manifest_files(files: Sequence[VersionFile]) -> list[ManifestFile]:
    return [
        ManifestFile(
            name=f.name,
            object_key=f.object_key,
            sha256=f.sha256,
            size_bytes=f.size_bytes,
            record_count=f.record_count,
        )
        for f in files
    ]


async def publish_version(deps: Deps, caller: Principal, dataset_id: str, version_id: str) -> DatasetVersion:
    """Validate and publish an uploaded version: from then on immutable, addressed by its manifest's
    sha256. A version left `validating` (a crash between the steps) can be published again."""
    async with deps.db.transaction() as session:
        found = await version_row(session, caller, dataset_id, version_id, lock=True)
        files = await version_files(session, version_id)
        if found.state != "validating":
            await move_version(
                session,
                found,
                "validate",
                caller.actor,
                file_count=len(files),
                size_bytes=sum(f.size_bytes for f in files),
            )
    errors = [
        f"{f.name}: object {f.object_key} is missing or has the wrong size"
        for f in files
        if await deps.store.size(f.object_key) != f.size_bytes
    ]
    if not files:
        errors.append("the version has no files")
    async with deps.db.session() as session:
        owner = await dataset_row(session, caller, dataset_id)
    if owner.schema_hint:
        errors += [
            f"schema: {problem}" for problem in schema_violations(owner.schema_hint, merged_stats(files))
        ]
    if errors:
        async with deps.db.transaction() as session:
            found = await version_row(session, caller, dataset_id, version_id, lock=True)
            found.errors = errors
            await move_version(session, found, "reject", caller.actor, errors=errors)
        raise Unprocessable("the version failed validation: " + "; ".join(errors))
    content = domain.manifest(_manifest_files(files))
    digest = domain.sha256_hex(content)
    await deps.store.put(domain.manifest_key(caller.tenant_id, digest), content)
    async with deps.db.transaction() as session:
        found = await version_row(session, caller, dataset_id, version_id, lock=True)
        await _publish(session, deps.store, found, files, digest, caller.actor)
    return found


LIFECYCLE = ("deprecate", "restore", "archive", "discard", "revise")
"""Version transitions a user asks for directly (publishing has its own use case)."""


async def change_version_state(
    deps: Deps,
    caller: Principal,
    dataset_id: str,
    version_id: str,
    transition: str,
    *,
    reason: str | None = None,
    replaced_by_version_id: str | None = None,
) -> DatasetVersion:
    """Deprecate, restore (roll back to), archive or discard a version, or reopen an invalid one."""
    extra: dict[str, Any] = {} if transition == "revise" else {"reason": reason}
    if transition == "deprecate":
        extra["replaced_by_version_id"] = replaced_by_version_id
    async with deps.db.transaction() as session:
        found = await version_row(session, caller, dataset_id, version_id, lock=True)
        if replaced_by_version_id is not None:
            await version_row(session, caller, dataset_id, replaced_by_version_id)
        await move_version(session, found, transition, caller.actor, **extra)
        if transition == "revise":
            found.errors = []
    return found


def merged_stats(files: Sequence[VersionFile]) -> FileStats:
    """The version's statistics from its files' (a file scanned before statistics existed adds none)."""
    merged = FileStats()
    for file in files:
        if file.stats is not None:
            merged.merge(FileStats.from_json(file.stats))
    return merged


async def _publish(
    session: AsyncSession,
    store: ObjectStore,
    found: DatasetVersion,
    files: Sequence[VersionFile],
    digest: str,
    actor: str | None,
) -> None:
    found.manifest_sha256 = digest
    found.manifest_key = domain.manifest_key(found.tenant, digest)
    found.record_schema = inferred_schema(merged_stats(files))
    found.item_count = sum(f.record_count for f in files)
    found.size_bytes = sum(f.size_bytes for f in files)
    found.published_at = now()
    found.errors = []
    await move_version(
        session,
        found,
        "publish",
        actor,
        manifest_uri=store.uri(found.manifest_key),
        manifest_sha256=digest,
        item_count=found.item_count,
        size_bytes=found.size_bytes,
        splits=found.splits,
    )
    await aliases.follow_publish(session, found, actor)


async def create_published_version(
    session: AsyncSession,
    store: ObjectStore,
    owner: Dataset,
    files: Sequence[ManifestFile],
    digest: str,
    actor: str | None,
    *,
    parent_version_id: str | None,
    operation: str,
    parameters: dict[str, Any],
    splits: dict[str, int] | None = None,
    request_key: str | None = None,
    stats: dict[str, dict[str, Any]] | None = None,
    source: str = "derived",
) -> DatasetVersion:
    """A derived version, taken through draft → uploading → validating → published in one transaction
    (its files are already in place and checked; `stats` by file name), one event per transition."""
    created = await _new_version(
        session,
        owner,
        actor,
        source=source,
        parent_version_id=parent_version_id,
        operation=operation,
        parameters=parameters,
        request_key=request_key,
    )
    rows = [
        VersionFile(version_id=created.id, stats=(stats or {}).get(f.name), **f.model_dump()) for f in files
    ]
    session.add_all(rows)
    created.splits = splits or {}
    staging_uri = store.uri(domain.staging_prefix(owner.tenant, created.id))
    await move_version(session, created, "start_upload", actor, staging_uri=staging_uri)
    await move_version(
        session, created, "validate", actor, file_count=len(rows), size_bytes=sum(f.size_bytes for f in rows)
    )
    await _publish(session, store, created, rows, digest, actor)
    return created


# --- activities' use cases --------------------------------------------------------------------------


async def published_version(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str
) -> tuple[Dataset, DatasetVersion, list[VersionFile]]:
    """A readable (published or deprecated) version, for consumers such as training."""
    async with deps.db.session() as session:
        owner = await dataset_row(session, caller, dataset_id)
        found = await version_row(session, caller, dataset_id, version_id)
        files = await version_files(session, version_id)
    if found.state not in READABLE:
        raise Conflict(f"version {version_id!r} is {found.state!r}, not published")
    return owner, found, files


async def _by_request_key(session: AsyncSession, tenant: str, key: str) -> DatasetVersion | None:
    query = select(DatasetVersion).where(DatasetVersion.tenant == tenant, DatasetVersion.request_key == key)
    return (await session.exec(query)).first()


async def publish_derived_version(
    deps: Deps, request: PublishDerivedVersion, request_key: str
) -> DatasetVersion:
    """Create and publish a version from JSONL files already in object storage (each validated and
    copied to its content-addressed key). Idempotent by `request_key`: a repeat returns the same version."""
    caller = Principal.of_service("dataset", request.tenant_id, on_behalf_of=request.actor)
    async with deps.db.session() as session:
        if (done := await _by_request_key(session, caller.tenant_id, request_key)) is not None:
            return done
        await dataset_row(session, caller, request.dataset_id)
        if request.parent_version_id is not None:
            query = select(DatasetVersion).where(
                DatasetVersion.id == request.parent_version_id, DatasetVersion.tenant == caller.tenant_id
            )
            if (await session.exec(query)).first() is None:
                raise NotFound(f"parent version {request.parent_version_id!r} does not exist")
    if len({f.name for f in request.files}) != len(request.files):
        raise Unprocessable("two files have the same name")
    imported = [
        await _import_file(deps, caller.tenant_id, f.name, f.object_key, f.bucket) for f in request.files
    ]
    outputs = [file for file, _ in imported]
    content = domain.manifest(outputs)
    digest = domain.sha256_hex(content)
    await deps.store.put(domain.manifest_key(caller.tenant_id, digest), content)
    try:
        async with deps.db.transaction() as session:
            owner = await dataset_row(session, caller, request.dataset_id, lock=True)
            if (done := await _by_request_key(session, caller.tenant_id, request_key)) is not None:
                return done
            return await create_published_version(
                session,
                deps.store,
                owner,
                outputs,
                digest,
                caller.actor,
                parent_version_id=request.parent_version_id,
                operation=request.operation,
                parameters=request.parameters,
                request_key=request_key,
                stats={file.name: stats for file, stats in imported},
            )
    except IntegrityError:  # a concurrent attempt with the same key won
        async with deps.db.session() as session:
            done = await _by_request_key(session, caller.tenant_id, request_key)
        if done is None:
            raise
        return done


async def _import_file(
    deps: Deps, tenant: str, name: str, object_key: str, bucket: str | None
) -> tuple[ManifestFile, dict[str, Any]]:
    size = await deps.store.size(object_key, bucket)
    if size is None:
        raise NotFound(f"object {object_key!r} does not exist in bucket {bucket or deps.store.bucket!r}")
    scanner = domain.JsonlScanner(name)
    try:
        async with contextlib.aclosing(deps.store.read(object_key, bucket)) as chunks:
            async for chunk in chunks:
                await asyncio.to_thread(scanner.feed, chunk)
        scanner.finish()
    except domain.InvalidRecords as error:
        raise Unprocessable(str(error)) from None
    key = domain.blob_key(tenant, scanner.sha256)
    if (bucket or deps.store.bucket, object_key) != (deps.store.bucket, key) and await deps.store.size(
        key
    ) != size:
        await deps.store.copy(object_key, key, size, source_bucket=bucket)
    file = ManifestFile(
        name=name,
        object_key=key,
        sha256=scanner.sha256,
        size_bytes=scanner.size_bytes,
        record_count=scanner.records,
    )
    return file, scanner.stats.to_json()
