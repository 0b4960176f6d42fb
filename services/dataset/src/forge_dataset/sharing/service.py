"""Use cases of sharing. A grant is made and revoked by the owner tenant's admins (`dataset.share`) with
the dataset's row locked, so grants and aliases of one dataset are one ordered stream of events (the
dataset's `sequence`); every grant, revocation and clearance change is an event, hence an audit entry.
Whether a grant may be made is `forge_kit.secrecy.sharing_refusal`, the same rule every read checks."""

from __future__ import annotations

from datetime import UTC, datetime

from forge_contracts.envelope import uuid7
from forge_contracts.events.dataset import DatasetClearanceSet, DatasetGrantCreated, DatasetGrantRevoked
from forge_kit import outbox
from forge_kit.auth import Directory, Principal
from forge_kit.db import Database
from forge_kit.errors import Conflict, NotFound, Unprocessable
from forge_kit.secrecy import DEFAULT_CLEARANCE, sharing_refusal
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from forge_dataset.rows import SHAREABLE_STATES, active_grants, clearance_of, dataset_row, version_row
from forge_dataset.sharing.schemas import GrantCreate
from forge_dataset.tables import Dataset, DatasetGrant, TenantClearance


def _now() -> datetime:
    return datetime.now(UTC)


async def grant(
    db: Database, directory: Directory, caller: Principal, dataset_id: str, body: GrantCreate
) -> DatasetGrant:
    """Share the caller's tenant's dataset (or one published version of it) with another tenant."""
    async with db.session() as session:
        await dataset_row(session, caller, dataset_id)  # another tenant's dataset: NotFound
    grantee = body.grantee_tenant
    if grantee == caller.tenant_id:
        raise Unprocessable(
            f"datasets are tenant-wide: every member of {grantee} who may read datasets reads this one "
            "already; a grant shares it with another tenant"
        )
    if not await directory.tenant_exists(grantee):
        raise Unprocessable(f"tenant {grantee!r} does not exist")
    async with db.transaction() as session:
        owner = await dataset_row(session, caller, dataset_id, lock=True)
        if body.version_id is not None:
            version = await version_row(session, caller, dataset_id, body.version_id)
            if version.state not in SHAREABLE_STATES:
                raise Conflict(
                    f"version {version.number} is {version.state}: only a published version is shared"
                )
        refusal = sharing_refusal(
            owner.secrecy,
            owner_tenant=owner.tenant,
            reader_tenant=grantee,
            clearance=await clearance_of(session, grantee),
        )
        if refusal is not None:
            raise Unprocessable(f"dataset {owner.name!r} cannot be shared with {grantee}: {refusal}")
        same = [g for g in await active_grants(session, owner.id, grantee) if g.version_id == body.version_id]
        if same:
            raise Conflict(
                f"{grantee} already has grant {same[0].id} to this; revoke it to change its access"
            )
        created = DatasetGrant(
            id=uuid7(),
            tenant=owner.tenant,
            dataset_id=owner.id,
            grantee_tenant=grantee,
            version_id=body.version_id,
            access=body.access,
            granted_by=caller.actor,
            granted_at=_now(),
        )
        session.add(created)
        owner.sequence += 1
        session.add(owner)
        event = DatasetGrantCreated(
            tenant_id=owner.tenant,
            occurred_at=created.granted_at,
            actor=caller.actor,
            dataset_id=owner.id,
            grant_id=created.id,
            grantee_tenant=grantee,
            version_id=created.version_id,
            access=body.access,
            secrecy=owner.secrecy,  # not secret: refused above
        )
        await outbox.publish(session, event.to_envelope(sequence=owner.sequence))
    return created


async def grants(db: Database, caller: Principal, dataset_id: str, *, revoked: bool) -> list[DatasetGrant]:
    """The caller's tenant's dataset's grants, oldest first (revoked ones too with `revoked`)."""
    async with db.session() as session:
        await dataset_row(session, caller, dataset_id)
        query = select(DatasetGrant).where(DatasetGrant.dataset_id == dataset_id)
        if not revoked:
            query = query.where(col(DatasetGrant.revoked_at).is_(None))
        return list((await session.exec(query.order_by(col(DatasetGrant.id)))).all())


async def revoke(db: Database, caller: Principal, dataset_id: str, grant_id: str, reason: str | None) -> None:
    """Revoke a grant: the grantee's next read is a 404. Revoking it again is a 409."""
    async with db.transaction() as session:
        owner = await dataset_row(session, caller, dataset_id, lock=True)
        found = await session.get(DatasetGrant, grant_id, with_for_update=True)
        if found is None or found.dataset_id != owner.id:
            raise NotFound(f"dataset {dataset_id!r} has no grant {grant_id!r}")
        if found.revoked_at is not None:
            raise Conflict(
                f"grant {grant_id} was revoked already, by {found.revoked_by} at {found.revoked_at}"
            )
        found.revoked_at, found.revoked_by, found.revoke_reason = _now(), caller.actor, reason
        session.add(found)
        owner.sequence += 1
        session.add(owner)
        event = DatasetGrantRevoked(
            tenant_id=owner.tenant,
            occurred_at=found.revoked_at,
            actor=caller.actor,
            dataset_id=owner.id,
            grant_id=found.id,
            grantee_tenant=found.grantee_tenant,
            version_id=found.version_id,
            access=found.access,
            reason=reason,
        )
        await outbox.publish(session, event.to_envelope(sequence=owner.sequence))


async def shared_datasets(db: Database, caller: Principal) -> list[tuple[Dataset, list[DatasetGrant]]]:
    """Datasets other tenants shared with the caller's, with their active grants, that the secrecy rule
    lets the caller's tenant read now."""
    async with db.session() as session:
        clearance = await clearance_of(session, caller.tenant_id)
        query = (
            select(Dataset, DatasetGrant)
            .join(DatasetGrant, col(DatasetGrant.dataset_id) == col(Dataset.id))
            .where(DatasetGrant.grantee_tenant == caller.tenant_id, col(DatasetGrant.revoked_at).is_(None))
            .order_by(col(Dataset.id), col(DatasetGrant.id))
        )
        found: dict[str, tuple[Dataset, list[DatasetGrant]]] = {}
        for dataset, granted in (await session.exec(query)).all():
            found.setdefault(dataset.id, (dataset, []))[1].append(granted)
    return [
        (dataset, granted)
        for dataset, granted in found.values()
        if sharing_refusal(
            dataset.secrecy, owner_tenant=dataset.tenant, reader_tenant=caller.tenant_id, clearance=clearance
        )
        is None
    ]


async def clearance(db: Database, caller: Principal) -> TenantClearance | None:
    """The clearance set for the caller's tenant, or None (then it is `DEFAULT_CLEARANCE`)."""
    async with db.session() as session:
        found: TenantClearance | None = await session.get(TenantClearance, caller.tenant_id)
        return found


async def set_clearance(db: Database, caller: Principal, level: str, reason: str | None) -> TenantClearance:
    """Set the caller's selected tenant's clearance (a platform admin's act). Lowering it stops reads of
    shared data above it at once; grants are kept and work again if it is raised."""
    tenant = caller.tenant_id
    try:
        async with db.transaction() as session:
            current: TenantClearance | None = await session.get(TenantClearance, tenant, with_for_update=True)
            previous = current.level if current is not None else DEFAULT_CLEARANCE.value
            if current is not None and current.level == level:
                return current
            current = current or TenantClearance(tenant=tenant, level=level)
            current.level, current.set_by, current.set_at = level, caller.actor, _now()
            current.sequence += 1
            session.add(current)
            event = DatasetClearanceSet(
                tenant_id=tenant,
                occurred_at=current.set_at,
                actor=caller.actor,
                level=level,
                previous_level=previous,
                reason=reason,
            )
            await outbox.publish(session, event.to_envelope(sequence=current.sequence))
    except IntegrityError:
        raise Conflict(f"the clearance of {tenant} was set concurrently; read it and try again") from None
    return current
