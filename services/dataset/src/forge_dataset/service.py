"""Use cases of the dataset service: one function per command, each change and its events in one
transaction through the outbox. Object storage I/O happens outside transactions, before the change that
makes it visible, so a failed request leaves no half-written version behind."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from forge_contracts.activities.dataset import ManifestFile, PublishDerivedVersion, is_version_id
from forge_contracts.envelope import uuid7
from forge_contracts.events.dataset import DatasetVersionCreated
from forge_kit.auth import Principal
from forge_kit.errors import Conflict, NotFound, Unprocessable
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_dataset import domain, formats
from forge_dataset.aliases import service as aliases
from forge_dataset.archives import service as archives
from forge_dataset.deps import Deps
from forge_dataset.events import VERSION, emit, move_version, now
from forge_dataset.media.references import check_references, media_fields
from forge_dataset.objects import ObjectStore
from forge_dataset.preview import RecordPage, RecordQuery
from forge_dataset.preview import page as record_page
from forge_dataset.rows import (
    aliased_version_id,
    dataset_row,
    derivable_version,
    readable_dataset,
    readable_version,
    version_files,
    version_row,
)
from forge_dataset.schemas import DatasetCreate
from forge_dataset.statistics.domain import FileStats, inferred_schema, schema_violations
from forge_dataset.tables import Dataset, DatasetVersion, VersionFile

READABLE = ("published", "deprecated")


async def published_source(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str, *, doing: str
) -> DatasetVersion:
    """The version a background task is asked to read: 409 unless published (`doing`: what the task
    would do, for the message, e.g. `can be split`)."""
    async with deps.db.session() as session:
        source = await version_row(session, caller, dataset_id, version_id)
    if source.state not in READABLE:
        raise Conflict(f"only a published version {doing}; version {version_id!r} is {source.state!r}")
    return source


# --- reads ------------------------------------------------------------------------------------------


async def datasets(deps: Deps, caller: Principal) -> list[Dataset]:
    async with deps.db.session() as session:
        query = select(Dataset).where(Dataset.tenant == caller.tenant_id).order_by(col(Dataset.id))
        return list((await session.exec(query)).all())


async def dataset(deps: Deps, caller: Principal, dataset_id: str) -> Dataset:
    """The caller's tenant's dataset, or one shared with it (DS-5)."""
    async with deps.db.session() as session:
        return (await readable_dataset(session, caller, dataset_id)).dataset


async def versions(deps: Deps, caller: Principal, dataset_id: str) -> list[DatasetVersion]:
    """The dataset's versions (a grantee's: the granted published ones only)."""
    async with deps.db.session() as session:
        access = await readable_dataset(session, caller, dataset_id)
        query = (
            select(DatasetVersion)
            .where(DatasetVersion.dataset_id == dataset_id, DatasetVersion.tenant == access.dataset.tenant)
            .order_by(col(DatasetVersion.number))
        )
        return [v for v in (await session.exec(query)).all() if access.covers(v)]


async def version(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str
) -> tuple[DatasetVersion, list[VersionFile]]:
    async with deps.db.session() as session:
        _, found = await readable_version(session, caller, dataset_id, version_id)
        return found, await version_files(session, version_id)


async def lineage(deps: Deps, caller: Principal, dataset_id: str, version_id: str) -> list[DatasetVersion]:
    """The version, then its parent, and so on back to the version with no parent (the raw data). The
    chain stops at the first parent the caller may not read (a grantee sees the granted versions only)."""
    async with deps.db.session() as session:
        current: DatasetVersion | None = (await readable_version(session, caller, dataset_id, version_id))[1]
        chain: list[DatasetVersion] = []
        while current is not None and current.id not in {v.id for v in chain}:
            chain.append(current)
            if current.parent_version_id is None:
                break
            parent = await session.get(DatasetVersion, current.parent_version_id)
            try:
                current = (
                    None
                    if parent is None
                    else (await readable_version(session, caller, parent.dataset_id, parent.id))[1]
                )
            except NotFound:
                current = None
        return chain


async def preview(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str, query: RecordQuery
) -> tuple[Dataset, DatasetVersion, list[VersionFile], RecordPage]:
    """A page of the version's records (from its JSONL, CSV and Parquet files, of any modality)."""
    async with deps.db.session() as session:
        access, found = await readable_version(session, caller, dataset_id, version_id)
        owner = access.dataset
        files = await version_files(session, version_id)
    if query.file is not None and not any(f.name == query.file for f in files):
        raise NotFound(f"version {version_id!r} has no file {query.file!r}")
    return owner, found, files, await record_page(deps.store, files, query, deps.work_dir)


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
        operation=operation,
    )
    return created


async def create_version(deps: Deps, caller: Principal, dataset_id: str) -> DatasetVersion:
    async with deps.db.transaction() as session:
        owner = await dataset_row(session, caller, dataset_id, lock=True)
        return await _new_version(session, owner, caller.actor, source="upload")


def _manifest_files(files: Sequence[VersionFile]) -> list[ManifestFile]:
    return [
        ManifestFile(
            name=f.name,
            object_key=f.object_key,
            sha256=f.sha256,
            size_bytes=f.size_bytes,
            record_count=f.record_count,
            format=f.format,  # type: ignore[arg-type]
            media_type=f.media_type,
        )
        for f in files
    ]


async def publish_version(deps: Deps, caller: Principal, dataset_id: str, version_id: str) -> DatasetVersion:
    """Validate and publish an uploaded version: from then on immutable, addressed by its manifest's
    sha256. A version left `validating` (a crash between the steps) can be published again; one an
    archive is still being expanded into cannot be published yet (409)."""
    if (busy := await archives.expanding(deps, caller.tenant_id, version_id)) is not None:
        raise Conflict(f"an archive is still being expanded into this version (task {busy.id}): wait for it")
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
    if files and not errors and (fields := media_fields(owner.schema_hint)):
        errors += [
            f"media: {problem}"
            for problem in await check_references(deps.store, files, fields, deps.work_dir)
        ]
    if errors:
        async with deps.db.transaction() as session:
            found = await version_row(session, caller, dataset_id, version_id, lock=True)
            found.errors = errors
            await move_version(session, found, "reject", caller.actor, errors=errors)
        raise Unprocessable("the version failed validation: " + "; ".join(errors))
    digest = await store_manifest(deps.store, caller.tenant_id, _manifest_files(files))
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
    return merged_documents(file.stats for file in files)


def merged_documents(documents: Iterable[dict[str, Any] | None]) -> FileStats:
    """Statistics documents (FileStats.to_json) merged into one; None adds nothing."""
    merged = FileStats()
    for document in documents:
        if document is not None:
            merged.merge(FileStats.from_json(document))
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


async def store_manifest(store: ObjectStore, tenant: str, files: Sequence[ManifestFile]) -> str:
    """Write the manifest of `files` under its own hash in the tenant's area; returns the hash (the
    version's content address)."""
    content = domain.manifest(files)
    digest = domain.sha256_hex(content)
    await store.put(domain.manifest_key(tenant, digest), content)
    return digest


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
        VersionFile(version_id=created.id, stats=(stats or {}).get(f.name), **f.model_dump(exclude_none=True))
        for f in files
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
    """A readable (published or deprecated) version, for consumers such as training: the caller's
    tenant's, or one shared with it through a grant checked on every call (a revoked grant: NotFound).
    `version_id` may be an alias of the dataset (`latest`, `golden`): the version it names now."""
    async with deps.db.session() as session:
        if not is_version_id(version_id):
            version_id = await aliased_version_id(session, caller, dataset_id, version_id)
        access, found = await readable_version(session, caller, dataset_id, version_id)
        owner = access.dataset
        files = await version_files(session, version_id)
    if found.state not in READABLE:
        raise Conflict(f"version {found.id!r} is {found.state!r}, not published")
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
        if request.parent_version_id is not None:  # the tenant's own, or shared with it for deriving
            await derivable_version(session, caller, request.parent_version_id)
    if len({f.name for f in request.files}) != len(request.files):
        raise Unprocessable("two files have the same name")
    imported = [
        await _import_file(deps, caller.tenant_id, f.name, f.object_key, f.bucket) for f in request.files
    ]
    outputs = [file for file, _ in imported]
    digest = await store_manifest(deps.store, caller.tenant_id, outputs)
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
    return formats.manifest_file(scanner, key), scanner.stats.to_json()
