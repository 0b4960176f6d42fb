"""Routes of sharing: a dataset's grants (share, list, revoke), the datasets shared with the caller's
tenant, and tenants' clearances."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from forge_kit.auth import Directory, Principal, allow
from forge_kit.db import Database
from forge_kit.policy import Action
from forge_kit.secrecy import DEFAULT_CLEARANCE

from forge_dataset.schemas import DatasetView
from forge_dataset.sharing import service
from forge_dataset.sharing.schemas import (
    ClearanceSet,
    ClearanceView,
    GrantCreate,
    GrantRevoke,
    GrantView,
    SharedDatasetView,
)
from forge_dataset.tables import TenantClearance

router = APIRouter(tags=["sharing"])


def _db(request: Request) -> Database:
    db: Database = request.app.state.deps.db
    return db


def _directory(request: Request) -> Directory:
    directory: Directory = request.app.state.authenticator.directory
    return directory


CanDatasetRead = Annotated[Principal, allow(Action.DATASET_READ)]
CanDatasetShare = Annotated[Principal, allow(Action.DATASET_SHARE)]
CanManageClearance = Annotated[Principal, allow(Action.DATASET_CLEARANCE_MANAGE)]
Db = Annotated[Database, Depends(_db)]
Tenants = Annotated[Directory, Depends(_directory)]


@router.post("/datasets/{dataset_id}/grants", status_code=201)
async def share_dataset(
    dataset_id: str, body: GrantCreate, db: Db, directory: Tenants, caller: CanDatasetShare
) -> GrantView:
    """Share the dataset, or one published version of it, with another tenant (`read`, or `read+derive`).
    422 when the secrecy rule refuses it (secret data never leaves its tenant; data above the grantee's
    clearance is not shared with it), 409 when the same grant is active already."""
    return GrantView.model_validate(await service.grant(db, directory, caller, dataset_id, body))


@router.get("/datasets/{dataset_id}/grants")
async def list_grants(
    dataset_id: str,
    db: Db,
    caller: CanDatasetRead,
    revoked: Annotated[bool, Query(description="Also list revoked grants.")] = False,
) -> list[GrantView]:
    """The dataset's grants (its owner tenant's members only), oldest first."""
    found = await service.grants(db, caller, dataset_id, revoked=revoked)
    return [GrantView.model_validate(g) for g in found]


@router.delete("/datasets/{dataset_id}/grants/{grant_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_grant(
    dataset_id: str, grant_id: str, db: Db, caller: CanDatasetShare, body: GrantRevoke | None = None
) -> Response:
    """Revoke a grant: the grantee's next read (a running training task's too) is a 404. A grant revoked
    already is a 409."""
    await service.revoke(db, caller, dataset_id, grant_id, body.reason if body else None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/shared-datasets")
async def list_shared_datasets(db: Db, caller: CanDatasetRead) -> list[SharedDatasetView]:
    """Datasets other tenants shared with the caller's tenant, with the grants that share them; read them
    through the usual `/datasets/{id}/...` routes."""
    return [
        SharedDatasetView(
            **DatasetView.model_validate(dataset).model_dump(),
            owner_tenant=dataset.tenant,
            grants=[GrantView.model_validate(g) for g in granted],
        )
        for dataset, granted in await service.shared_datasets(db, caller)
    ]


def _clearance_view(tenant: str, found: TenantClearance | None) -> ClearanceView:
    if found is None:
        return ClearanceView.model_validate(
            {"tenant": tenant, "level": DEFAULT_CLEARANCE.value, "default": True}
        )
    return ClearanceView.model_validate(
        {
            "tenant": tenant,
            "level": found.level,
            "default": False,
            "set_by": found.set_by,
            "set_at": found.set_at,
        }
    )


@router.get("/clearances/{tenant_id}")
async def get_clearance(tenant_id: str, db: Db, caller: CanDatasetRead) -> ClearanceView:
    """The highest secrecy level of other tenants' data the tenant may be granted (`internal` unless a
    platform admin set it)."""
    return _clearance_view(caller.tenant_id, await service.clearance(db, caller))


@router.put("/clearances/{tenant_id}")
async def set_clearance(
    tenant_id: str, body: ClearanceSet, db: Db, caller: CanManageClearance
) -> ClearanceView:
    """Set the tenant's clearance (platform admins): `public`, `internal` or `confidential`; no tenant is
    cleared for `secret` data. Lowering it stops the tenant's reads of shared data above it at once."""
    found = await service.set_clearance(db, caller, body.level, body.reason)
    return _clearance_view(caller.tenant_id, found)
