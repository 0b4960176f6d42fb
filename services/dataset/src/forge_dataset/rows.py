"""Tenant-scoped reads of the dataset service's rows, shared by its use cases and feature modules: every
query for a dataset or a version is built from the caller's tenant here, so no module can forget it."""

from __future__ import annotations

from forge_kit.auth import Principal
from forge_kit.errors import NotFound
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_dataset.tables import Dataset, DatasetVersion, VersionFile


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
