"""The lineage graph: built from every service's events (exactly once per event, through the kit's inbox),
walked both ways for a tenant, and its runs sent on as OpenLineage events.

The graph is the platform's record of what came from what: a raw dataset version, the tasks and
versions derived from it, the labeling projects that read it, the training jobs that trained on it, the
model versions they produced and the deliveries of those. "Which models used data derived from raw
version X" is a walk downstream from X keeping model versions; "what raw data is in this model" a walk
upstream from the model version keeping dataset versions nothing else produced.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import httpx
import orjson
from faststream.kafka import KafkaBroker
from forge_contracts.envelope import EventEnvelope
from forge_kit.db import Database
from forge_kit.errors import NotFound
from forge_kit.observability import logger
from sqlalchemy import func, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_registry.lineage.facts import KINDS, Ref, facts
from forge_registry.lineage.openlineage import run_event
from forge_registry.lineage.schemas import EdgeView, GraphView, NodeView
from forge_registry.lineage.tables import LineageEdge, LineageNode, OpenLineageEvent
from forge_registry.tables import now

MAX_DEPTH = 50
MAX_NODES = 5000
RELAY_BATCH = 100


async def on_event(event: EventEnvelope, session: AsyncSession) -> None:
    """Add what `event` says to the graph, and queue its run's OpenLineage event."""
    found = facts(event)
    for node in found.nodes:
        row = {
            "kind": node.kind,
            "id": node.id,
            "tenant_id": found.tenant if node.owned else None,
            "name": node.name,
            "attributes": node.attributes,
            "updated_at": now(),
        }
        statement = insert(LineageNode).values(**row)
        await session.exec(  # type: ignore[call-overload]
            statement.on_conflict_do_update(
                index_elements=["kind", "id"],
                set_={
                    "tenant_id": func.coalesce(LineageNode.tenant_id, statement.excluded.tenant_id),
                    "name": func.coalesce(statement.excluded.name, LineageNode.name),
                    "attributes": LineageNode.attributes.op("||")(statement.excluded.attributes),  # type: ignore[attr-defined]
                    "updated_at": statement.excluded.updated_at,
                },
            )
        )
    for edge in found.edges:
        await session.exec(  # type: ignore[call-overload]
            insert(LineageEdge)
            .values(
                source_kind=edge.source[0],
                source_id=edge.source[1],
                target_kind=edge.target[0],
                target_id=edge.target[1],
                relation=edge.relation,
                tenant_id=found.tenant,
                recorded_at=now(),
            )
            .on_conflict_do_nothing()
        )
    for run in found.runs:
        inputs = list(run.inputs)
        if run.inputs_of is not None:
            inputs += await _sources(session, found.tenant, run.inputs_of)
        session.add(
            OpenLineageEvent(run_id=run.run_id, payload=run_event(run, found.tenant, found.at, inputs))
        )


async def _sources(session: AsyncSession, tenant: str, target: Ref) -> list[Ref]:
    rows = await session.exec(
        select(LineageEdge.source_kind, LineageEdge.source_id)
        .where(LineageEdge.tenant_id == tenant)
        .where(LineageEdge.target_kind == target[0], LineageEdge.target_id == target[1])
        .order_by(col(LineageEdge.source_kind), col(LineageEdge.source_id))
    )
    return [(kind, ident) for kind, ident in rows.all()]


async def graph(
    db: Database,
    tenant: str,
    root: Ref,
    *,
    direction: str,
    depth: int,
    kinds: set[str] | None,
) -> GraphView:
    """The part of the tenant's graph reachable from `root` (`upstream`, `downstream` or `both`), up to
    `depth` edges away; `kinds` keeps only those nodes in `nodes` (the edges walked stay whole)."""
    if root[0] not in KINDS:
        raise NotFound(f"no lineage node kind {root[0]!r}; kinds: {', '.join(KINDS)}")
    async with db.session() as session:
        known = (
            await session.exec(
                select(LineageNode).where(LineageNode.kind == root[0], LineageNode.id == root[1])
            )
        ).first()
        if known is None or known.tenant_id != tenant:
            raise NotFound(f"no lineage is known for {root[0]} {root[1]!r}")
        distance: dict[Ref, int] = {root: 0}
        edges: dict[tuple[Ref, Ref, str], None] = {}
        ways = ("upstream", "downstream") if direction == "both" else (direction,)
        for way in ways:
            frontier = [root]
            for step in range(1, depth + 1):
                if not frontier or len(distance) >= MAX_NODES:
                    break
                found = await _step(session, tenant, frontier, way)
                frontier = []
                for source, target, relation in found:
                    edges[(source, target, relation)] = None
                    reached = source if way == "upstream" else target
                    if reached not in distance:
                        distance[reached] = step if way == "downstream" else -step
                        frontier.append(reached)
        nodes = await _nodes(session, list(distance))
    views = []
    for ref, away in distance.items():
        if kinds and ref[0] not in kinds and ref != root:
            continue
        row = nodes.get(ref)
        visible = row is not None and row.tenant_id == tenant
        views.append(
            NodeView(
                kind=ref[0],
                id=ref[1],
                distance=away,
                visible=visible,
                name=row.name if visible and row else None,
                attributes=row.attributes if visible and row else {},
            )
        )
    views.sort(key=lambda n: (abs(n.distance), n.kind, n.id))
    return GraphView(
        root=views[0] if views and views[0].distance == 0 else NodeView(kind=root[0], id=root[1], distance=0),
        direction=direction,  # type: ignore[arg-type]
        nodes=views,
        edges=[
            EdgeView(source_kind=s[0], source_id=s[1], target_kind=t[0], target_id=t[1], relation=r)
            for (s, t, r) in edges
        ],
    )


async def _step(
    session: AsyncSession, tenant: str, frontier: list[Ref], way: str
) -> list[tuple[Ref, Ref, str]]:
    near = (
        tuple_(LineageEdge.target_kind, LineageEdge.target_id)
        if way == "upstream"
        else tuple_(LineageEdge.source_kind, LineageEdge.source_id)
    )
    rows = await session.exec(
        select(
            LineageEdge.source_kind,
            LineageEdge.source_id,
            LineageEdge.target_kind,
            LineageEdge.target_id,
            LineageEdge.relation,
        )
        .where(LineageEdge.tenant_id == tenant)
        .where(near.in_(frontier))
    )
    return [((sk, si), (tk, ti), relation) for sk, si, tk, ti, relation in rows.all()]


async def _nodes(session: AsyncSession, refs: Iterable[Ref]) -> dict[Ref, LineageNode]:
    wanted = list(refs)
    found: dict[Ref, LineageNode] = {}
    for start in range(0, len(wanted), 500):
        rows = await session.exec(
            select(LineageNode).where(
                tuple_(LineageNode.kind, LineageNode.id).in_(wanted[start : start + 500])
            )
        )
        for row in rows.all():
            found[(row.kind, row.id)] = row
    return found


class OpenLineageRelay:
    """Sends queued OpenLineage events, oldest first: to a Kafka topic (the OpenLineage Kafka transport's
    layout: the event as JSON, keyed by run id) and, if configured, to an HTTP endpoint (Marquez's
    `/api/v1/lineage`, DataHub's `/openapi/openlineage/api/v1/lineage`). An event is marked sent once every
    transport took it; one that fails stays queued and is tried again."""

    def __init__(
        self,
        db: Database,
        broker: KafkaBroker,
        *,
        topic: str | None,
        url: str | None,
        interval_s: float = 1.0,
    ) -> None:
        self.db, self.broker, self.topic, self.url, self.interval_s = db, broker, topic, url, interval_s
        self.stopping = asyncio.Event()
        self.log = logger(component="openlineage")

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=10.0) as http:
            while not self.stopping.is_set():
                try:
                    sent = await self.send_batch(http)
                except Exception as error:  # the database or a transport is down: try again later
                    self.log.warning("openlineage.send_failed", error=repr(error)[:500])
                    sent = 0
                if sent < RELAY_BATCH:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), self.interval_s)

    async def stop(self) -> None:
        self.stopping.set()

    async def send_batch(self, http: httpx.AsyncClient) -> int:
        async with self.db.transaction() as session:
            rows = (
                await session.exec(
                    select(OpenLineageEvent)
                    .where(col(OpenLineageEvent.sent_at).is_(None))
                    .order_by(col(OpenLineageEvent.seq))
                    .limit(RELAY_BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                body = orjson.dumps(row.payload)
                if self.topic:
                    await self.broker.publish(
                        body,
                        topic=self.topic,
                        key=row.run_id.encode(),
                        headers={"content-type": "application/json"},
                    )
                if self.url:
                    answer = await http.post(
                        self.url, content=body, headers={"Content-Type": "application/json"}
                    )
                    answer.raise_for_status()
            if rows:
                await session.exec(  # type: ignore[call-overload]
                    update(OpenLineageEvent)
                    .where(col(OpenLineageEvent.seq).in_([r.seq for r in rows]))
                    .values(sent_at=now())
                )
        return len(rows)


__all__ = ["OpenLineageRelay", "graph", "on_event"]
