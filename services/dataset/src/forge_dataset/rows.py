"""Tenant-scoped reads of the dataset service's rows, shared by its use cases and feature modules: every
query for a dataset or a version is built from the caller's tenant here, so no module can forget it.

`dataset_row` and `version_row` are the owner's (every write goes through them); `readable_dataset` and
`readable_version` also admit a tenant the dataset is shared with (DS-5), checked on every read: an
active grant that covers the version, and the secrecy rule of `forge_kit.secrecy`."""

from __future__ import annotations

from dataclasses import dataclass, field

from forge_kit.auth import Principal
from forge_kit.errors import NotFound
from forge_kit.secrecy import sharing_refusal
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_dataset.tables import (
    Dataset,
    DatasetAlias,
    DatasetGrant,
    DatasetVersion,
    TenantClearance,
    VersionFile,
)

SHAREABLE_STATES = ("published", "deprecated")
"""The states of a version a grantee reads (never a draft, nor an archived or discarded version)."""


async def dataset_row(
    session: AsyncSession, caller: Principal, dataset_id: str, *, lock: bool = False
) -> Dataset:
    """The caller's tenant's dataset (locked for update with `lock`), or NotFound: another tenant's too."""
    query = select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant == caller.tenant_id)
    if lock:
        query = query.with_for_update()
    found = (await session.exec(query)).first()
    if found is None:
        raise NotFound(f"dataset {dataset_id!r} does not exist")
    return found


async def version_row(
    session: AsyncSession, caller: Principal, dataset_id: str, version_id: str, *, lock: bool = False
) -> DatasetVersion:
    """A version of the caller's tenant's dataset (locked for update with `lock`), or NotFound."""
    query = select(DatasetVersion).where(
        DatasetVersion.id == version_id,
        DatasetVersion.dataset_id == dataset_id,
        DatasetVersion.tenant == caller.tenant_id,
    )
    if lock:
        query = query.with_for_update()
    found = (await session.exec(query)).first()
    if found is None:
        raise NotFound(f"version {version_id!r} of dataset {dataset_id!r} does not exist")
    return found


async def version_files(session: AsyncSession, version_id: str) -> list[VersionFile]:
    """A version's files in name order (the version itself read through `version_row` first)."""
    query = select(VersionFile).where(VersionFile.version_id == version_id).order_by(col(VersionFile.name))
    return list((await session.exec(query)).all())


@dataclass(frozen=True)
class Access:
    """How the caller reaches a dataset: as its owner tenant, or through the active grants listed."""

    dataset: Dataset
    grants: list[DatasetGrant] = field(default_factory=list)

    @property
    def owned(self) -> bool:
        return not self.grants

    def covers(self, version: DatasetVersion) -> bool:
        """Whether the caller may read `version` of the dataset."""
        if self.owned:
            return True
        return version.state in SHAREABLE_STATES and any(
            g.version_id in (None, version.id) for g in self.grants
        )

    def derives(self, version: DatasetVersion) -> bool:
        """Whether the caller may name `version` the parent of a version of its own."""
        if self.owned:
            return True
        return self.covers(version) and any(
            g.access == "read+derive" and g.version_id in (None, version.id) for g in self.grants
        )


async def active_grants(session: AsyncSession, dataset_id: str, grantee_tenant: str) -> list[DatasetGrant]:
    """The unrevoked grants of a dataset to `grantee_tenant`."""
    query = select(DatasetGrant).where(
        DatasetGrant.dataset_id == dataset_id,
        DatasetGrant.grantee_tenant == grantee_tenant,
        col(DatasetGrant.revoked_at).is_(None),
    )
    return list((await session.exec(query)).all())


async def clearance_of(session: AsyncSession, tenant: str) -> str | None:
    """The clearance a platform admin set for `tenant`, or None (the default)."""
    found = await session.get(TenantClearance, tenant)
    return found.level if found is not None else None


async def readable_dataset(session: AsyncSession, caller: Principal, dataset_id: str) -> Access:
    """The dataset, if the caller's tenant owns it or has an active grant to it that the secrecy rule
    admits; otherwise NotFound, as if it did not exist."""
    found = await session.get(Dataset, dataset_id)
    if found is None:
        raise NotFound(f"dataset {dataset_id!r} does not exist")
    if found.tenant == caller.tenant_id:
        return Access(found)
    grants = await active_grants(session, dataset_id, caller.tenant_id)
    refusal = sharing_refusal(
        found.secrecy,
        owner_tenant=found.tenant,
        reader_tenant=caller.tenant_id,
        clearance=await clearance_of(session, caller.tenant_id),
    )
    if not grants or refusal is not None:
        raise NotFound(f"dataset {dataset_id!r} does not exist")
    return Access(found, grants)


async def readable_version(
    session: AsyncSession, caller: Principal, dataset_id: str, version_id: str
) -> tuple[Access, DatasetVersion]:
    """A version the caller may read: any of its own tenant's, or a granted published one; or NotFound."""
    access = await readable_dataset(session, caller, dataset_id)
    query = select(DatasetVersion).where(
        DatasetVersion.id == version_id,
        DatasetVersion.dataset_id == dataset_id,
        DatasetVersion.tenant == access.dataset.tenant,
    )
    found = (await session.exec(query)).first()
    if found is None or not access.covers(found):
        raise NotFound(f"version {version_id!r} of dataset {dataset_id!r} does not exist")
    return access, found


async def aliased_version_id(session: AsyncSession, caller: Principal, dataset_id: str, name: str) -> str:
    """The id of the version an alias of a dataset the caller may read names now; or NotFound."""
    access = await readable_dataset(session, caller, dataset_id)
    found = await session.get(DatasetAlias, (dataset_id, name))
    if found is None or found.tenant != access.dataset.tenant:
        raise NotFound(f"dataset {dataset_id!r} has no alias {name!r}")
    return found.version_id


async def derivable_version(session: AsyncSession, caller: Principal, version_id: str) -> DatasetVersion:
    """A version the caller may name as the parent of a version of its own: any of its tenant's, or one
    shared with it by a `read+derive` grant; otherwise NotFound."""
    found = await session.get(DatasetVersion, version_id)
    if found is not None and found.tenant == caller.tenant_id:
        return found
    if found is not None:
        try:
            access = await readable_dataset(session, caller, found.dataset_id)
        except NotFound:
            pass
        else:
            if access.derives(found):
                return found
    raise NotFound(f"parent version {version_id!r} does not exist")
