"""Routes of dataset aliases: list, read, point (set, move forward, roll back) and remove."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from forge_kit.auth import Principal, allow
from forge_kit.db import Database
from forge_kit.policy import Action

from forge_dataset.aliases import service
from forge_dataset.aliases.schemas import AliasMove, AliasName, AliasRemoval, AliasView
from forge_dataset.tables import DatasetAlias, DatasetVersion

router = APIRouter(prefix="/datasets/{dataset_id}/aliases", tags=["aliases"])


def _db(request: Request) -> Database:
    db: Database = request.app.state.deps.db
    return db


CanDatasetRead = Annotated[Principal, allow(Action.DATASET_READ)]
CanDatasetWrite = Annotated[Principal, allow(Action.DATASET_WRITE)]
Db = Annotated[Database, Depends(_db)]


def _view(found: tuple[DatasetAlias, DatasetVersion]) -> AliasView:
    alias, version = found
    return AliasView(
        name=alias.name,
        dataset_id=alias.dataset_id,
        version_id=version.id,
        version_number=version.number,
        version_state=version.state,
        moved_by=alias.moved_by,
        moved_at=alias.moved_at,
    )


@router.get("")
async def list_aliases(dataset_id: str, db: Db, caller: CanDatasetRead) -> list[AliasView]:
    """The dataset's aliases, by name (`latest` once a version is published)."""
    return [_view(found) for found in await service.aliases(db, caller, dataset_id)]


@router.get("/{name}")
async def get_alias(dataset_id: str, name: AliasName, db: Db, caller: CanDatasetRead) -> AliasView:
    """The version an alias names."""
    return _view(await service.alias(db, caller, dataset_id, name))


@router.put("/{name}")
async def point_alias(
    dataset_id: str, name: AliasName, body: AliasMove, db: Db, caller: CanDatasetWrite
) -> AliasView:
    """Point the alias at a published version of the dataset: set it, move it forward, or roll it back
    to an older version (the event says `rollback`). Pointing it where it is changes nothing."""
    return _view(await service.point(db, caller, dataset_id, name, body.version_id, body.reason))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_alias(
    dataset_id: str, name: AliasName, db: Db, caller: CanDatasetWrite, body: AliasRemoval | None = None
) -> Response:
    """Remove one of the users' aliases (`latest` cannot be removed: 409)."""
    await service.remove(db, caller, dataset_id, name, body.reason if body else None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
