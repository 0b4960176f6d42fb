"""Use cases of dataset aliases. An alias names one published version of its dataset; the dataset's row
is locked while one moves, so concurrent moves apply one after the other and each event's `previous`
is the alias as the one before left it."""

from __future__ import annotations

from datetime import UTC, datetime

from forge_contracts.activities.dataset import is_version_id
from forge_contracts.events.dataset import DatasetAliasMoved, DatasetAliasRemoved
from forge_kit import outbox
from forge_kit.auth import Principal
from forge_kit.db import Database
from forge_kit.errors import Conflict, NotFound, Unprocessable
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_dataset.rows import dataset_row, version_row
from forge_dataset.tables import Dataset, DatasetAlias, DatasetVersion

LATEST = "latest"
"""The alias every publish moves forward; it may be moved back (a rollback) but not removed."""


def _now() -> datetime:
    return datetime.now(UTC)


async def _move(
    session: AsyncSession,
    dataset: Dataset,
    name: str,
    version: DatasetVersion,
    actor: str | None,
    reason: str | None = None,
) -> DatasetAlias:
    """Point `name` at `version` (the dataset row locked by the caller); one event when it moved."""
    current = await session.get(DatasetAlias, (dataset.id, name))
    if current is not None and current.version_id == version.id:
        return current  # already there: nothing moved, nothing to record
    previous = await session.get(DatasetVersion, current.version_id) if current is not None else None
    alias = current or DatasetAlias(
        dataset_id=dataset.id, name=name, tenant=dataset.tenant, version_id=version.id
    )
    alias.version_id, alias.moved_by, alias.moved_at = version.id, actor, _now()
    session.add(alias)
    dataset.sequence += 1
    session.add(dataset)
    event = DatasetAliasMoved(
        tenant_id=dataset.tenant,
        occurred_at=alias.moved_at,
        actor=actor,
        dataset_id=dataset.id,
        alias=name,
        version_id=version.id,
        version_number=version.number,
        previous_version_id=previous.id if previous else None,
        previous_version_number=previous.number if previous else None,
        rollback=previous is not None and version.number < previous.number,
        reason=reason,
    )
    await outbox.publish(session, event.to_envelope(sequence=dataset.sequence))
    return alias


async def follow_publish(session: AsyncSession, version: DatasetVersion, actor: str | None) -> None:
    """`latest` moves to a version just published when it is newer than the one `latest` names (after a
    rollback, the next publish moves it forward again)."""
    dataset = (
        await session.exec(select(Dataset).where(Dataset.id == version.dataset_id).with_for_update())
    ).one()
    current = await session.get(DatasetAlias, (dataset.id, LATEST))
    named = await session.get(DatasetVersion, current.version_id) if current is not None else None
    if named is None or named.number < version.number:
        await _move(session, dataset, LATEST, version, actor)


async def aliases(
    db: Database, caller: Principal, dataset_id: str
) -> list[tuple[DatasetAlias, DatasetVersion]]:
    async with db.session() as session:
        await dataset_row(session, caller, dataset_id)  # another tenant's dataset: NotFound
        rows = await session.exec(
            select(DatasetAlias, DatasetVersion)
            .where(DatasetAlias.dataset_id == dataset_id, DatasetAlias.tenant == caller.tenant_id)
            .join(DatasetVersion, col(DatasetVersion.id) == col(DatasetAlias.version_id))
            .order_by(col(DatasetAlias.name))
        )
        return [(alias, version) for alias, version in rows.all()]


async def alias(
    db: Database, caller: Principal, dataset_id: str, name: str
) -> tuple[DatasetAlias, DatasetVersion]:
    for found, version in await aliases(db, caller, dataset_id):
        if found.name == name:
            return found, version
    raise NotFound(f"dataset {dataset_id!r} has no alias {name!r}")


async def point(
    db: Database, caller: Principal, dataset_id: str, name: str, version_id: str, reason: str | None
) -> tuple[DatasetAlias, DatasetVersion]:
    """Name `version_id` (a published version of the dataset) by `name`: set, move forward or roll back."""
    if is_version_id(name):  # consumers name a version by id or alias: the two must not collide
        raise Unprocessable(f"name: {name!r} looks like a version id; an alias needs another name")
    async with db.transaction() as session:
        owner = await dataset_row(session, caller, dataset_id, lock=True)
        version = await version_row(session, caller, dataset_id, version_id)
        if version.state != "published":
            raise Conflict(
                f"version {version.number} is {version.state}: an alias names a published version only"
            )
        moved = await _move(session, owner, name, version, caller.actor, reason)
    return moved, version


async def remove(db: Database, caller: Principal, dataset_id: str, name: str, reason: str | None) -> None:
    """Remove a user's alias (`latest` always names a version once one is published: 409)."""
    async with db.transaction() as session:
        owner = await dataset_row(session, caller, dataset_id, lock=True)
        if name == LATEST:
            raise Conflict("`latest` cannot be removed; move it to another published version instead")
        current = await session.get(DatasetAlias, (owner.id, name))
        if current is None:
            raise NotFound(f"dataset {dataset_id!r} has no alias {name!r}")
        await session.delete(current)
        owner.sequence += 1
        session.add(owner)
        event = DatasetAliasRemoved(
            tenant_id=owner.tenant,
            occurred_at=_now(),
            actor=caller.actor,
            dataset_id=owner.id,
            alias=name,
            previous_version_id=current.version_id,
            reason=reason,
        )
        await outbox.publish(session, event.to_envelope(sequence=owner.sequence))
