"""Routes of the lineage graph: `GET /lineage/{kind}/{id}` walks it from one node."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from forge_kit.auth import Principal, allow
from forge_kit.policy import Action
from forge_kit.runtime import Runtime

from forge_registry.lineage import service
from forge_registry.lineage.facts import KINDS
from forge_registry.lineage.schemas import GraphView

router = APIRouter(prefix="/lineage", tags=["lineage"])
CanRegistryRead = Annotated[Principal, allow(Action.REGISTRY_READ)]


@router.get("/{kind}/{node_id}")
async def lineage_graph(
    kind: str,
    node_id: str,
    who: CanRegistryRead,
    svc: Runtime,
    direction: Annotated[Literal["upstream", "downstream", "both"], Query()] = "both",
    depth: Annotated[int, Query(ge=1, le=service.MAX_DEPTH)] = 20,
    only: Annotated[
        list[str] | None,
        Query(alias="kind", description=f"Keep only nodes of these kinds: {', '.join(KINDS)}."),
    ] = None,
) -> GraphView:
    """The lineage of a dataset version, dataset task, labeling project, training job, base model, model
    version or delivery order, across services: what it came from (`upstream`), what came of it
    (`downstream`) or both. `kind=model_version` downstream of a raw dataset version lists the models that
    used data derived from it; `kind=dataset_version` upstream of a model version, the data in it."""
    return await service.graph(
        svc.db,
        who.tenant_id,
        (kind, node_id),
        direction=direction,
        depth=depth,
        kinds=set(only) if only else None,
    )
