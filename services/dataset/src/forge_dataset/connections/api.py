"""Routes of connections: register (verified), list, read and remove the object stores and databases
imports read from. Their secrets are write-only: a view says `secret_set`, never the secret."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from forge_dataset.connections import service
from forge_dataset.connections.schemas import ConnectionCreate, ConnectionView
from forge_dataset.routing import CanDatasetRead, CanDatasetWrite, Deps
from forge_dataset.tables import SourceConnection

router = APIRouter(prefix="/connections", tags=["connections"])


def _view(found: SourceConnection) -> ConnectionView:
    return ConnectionView(
        id=found.id,
        name=found.name,
        kind=found.kind,  # type: ignore[arg-type]
        **found.options,
        secret_set=bool(found.sealed_secret),
        created_by=found.created_by,
        created_at=found.created_at,
        verified_at=found.verified_at,
    )


@router.post("", status_code=201)
async def register_connection(body: ConnectionCreate, deps: Deps, caller: CanDatasetWrite) -> ConnectionView:
    """Register a connection in the caller's tenant, after connecting with it (S3: listing the bucket;
    SQL: `SELECT 1`): 422 with the reason when that fails (wrong credentials, a missing bucket or
    database, an address that is not public), 409 when the tenant has one of that name."""
    return _view(await service.register(deps, caller, body))


@router.get("")
async def list_connections(deps: Deps, caller: CanDatasetRead) -> list[ConnectionView]:
    """The tenant's connections, by name (without their secrets)."""
    return [_view(found) for found in await service.connections(deps, caller)]


@router.get("/{connection_id}")
async def get_connection(connection_id: str, deps: Deps, caller: CanDatasetRead) -> ConnectionView:
    """A connection (without its secret)."""
    return _view(await service.connection(deps, caller, connection_id))


@router.delete("/{connection_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_connection(connection_id: str, deps: Deps, caller: CanDatasetWrite) -> Response:
    """Remove a connection and its secret."""
    await service.remove(deps, caller, connection_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
