"""Use cases of delivery orders: one function per command, one transaction each, every state change
through the `delivery_order` machine with exactly one event in the outbox."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from forge_contracts.activities.delivery import MODEL_NAME_PATTERN
from forge_contracts.activities.registry import VersionDescription
from forge_contracts.envelope import uuid7
from forge_contracts.events.delivery import (
    BundleFile,
    DeliveryOrderCancelled,
    DeliveryOrderCreated,
    DeliveryOrderEvent,
    DeliveryOrderFailed,
    DeliveryOrderPackaged,
    DeliveryOrderPackagingStarted,
    DeliveryOrderPublishingStarted,
    ModelDelivered,
)
from forge_kit import outbox
from forge_kit.db import Database
from forge_kit.errors import BadRequest, Conflict, NotFound, Unprocessable
from forge_kit.idempotency import request_fingerprint
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_delivery.domain import ACTOR, MACHINE, bundle_location
from forge_delivery.registry import Registry
from forge_delivery.schemas import CreateDeliveryOrder
from forge_delivery.settings import DeliverySettings
from forge_delivery.tables import DeliveryOrder

MAX_ERROR_CHARS = 4000
ACTIVE_STATES = sorted(MACHINE.states - MACHINE.terminal)


class OrderInterrupted(Exception):
    """The order left the state a running step expected (it was cancelled meanwhile)."""


def _now() -> datetime:
    return datetime.now(UTC)


async def _emit(session: AsyncSession, order: DeliveryOrder, payload: DeliveryOrderEvent) -> None:
    order.sequence += 1
    order.updated_at = _now()
    session.add(order)
    await outbox.publish(session, payload.to_envelope(sequence=order.sequence))


async def _locked(session: AsyncSession, order_id: str, tenant: str | None = None) -> DeliveryOrder:
    order = await session.get(DeliveryOrder, order_id, with_for_update=True)
    if order is None or (tenant is not None and order.tenant_id != tenant):
        raise NotFound(f"delivery order {order_id!r} does not exist")
    return order


def _base(order: DeliveryOrder) -> dict[str, object]:
    return {
        "tenant_id": order.tenant_id,
        "occurred_at": _now(),
        "order_id": order.id,
        "model_version_id": order.model_version_id,
    }


async def _by_key(session: AsyncSession, tenant: str, key: str) -> DeliveryOrder | None:
    statement = select(DeliveryOrder).where(
        DeliveryOrder.tenant_id == tenant, DeliveryOrder.idempotency_key == key
    )
    return (await session.exec(statement)).first()


async def _live_for_bundle(
    session: AsyncSession, tenant: str, name: str, version: int
) -> DeliveryOrder | None:
    statement = select(DeliveryOrder).where(
        DeliveryOrder.tenant_id == tenant,
        DeliveryOrder.model_name == name,
        DeliveryOrder.model_version == version,
        col(DeliveryOrder.state).not_in(["failed", "cancelled"]),
    )
    return (await session.exec(statement)).first()


def _replay(existing: DeliveryOrder, fingerprint: str, key: str) -> DeliveryOrder:
    """The order an idempotency key made, for a repeat of its request; another request is a 422."""
    if existing.request_hash is not None and existing.request_hash != fingerprint:
        raise Unprocessable(
            f"idempotency key {key!r} was used for another request (delivery order {existing.id}); "
            "send the same request again, or use a new key"
        )
    return existing


def _model_name(request: CreateDeliveryOrder, version: VersionDescription) -> str:
    if request.model_name is not None:
        return request.model_name
    if re.fullmatch(MODEL_NAME_PATTERN, version.project_name):
        return version.project_name
    raise Unprocessable(
        f"model_name: the model project's name {version.project_name!r} cannot name a bundle folder; "
        "give model_name (letters, digits, '.', '_' and '-')"
    )


def _check_against_registry(request: CreateDeliveryOrder, version: VersionDescription) -> None:
    """What the caller says about the version must be what the registry says."""
    if request.model_id is not None and request.model_id != version.project_id:
        raise Unprocessable(
            f"model_id: model version {version.version_id} belongs to model project {version.project_id}, "
            f"not {request.model_id}"
        )
    if request.model_version is not None and request.model_version != version.version:
        raise Unprocessable(
            f"model_version: model version {version.version_id} is version {version.version}, "
            f"not {request.model_version}"
        )


async def _lock_key(session: AsyncSession, tenant: str, key: str) -> None:
    """Serialise the creates of one idempotency key (until the transaction ends): the second waits, then
    finds the first's order."""
    await session.exec(  # type: ignore[call-overload]
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        params={"key": f"delivery-order:{tenant}:{key}"},
    )


async def create_order(
    db: Database,
    settings: DeliverySettings,
    registry: Registry,
    *,
    tenant: str,
    actor: str | None,
    request: CreateDeliveryOrder,
    idempotency_key: str | None = None,
) -> tuple[DeliveryOrder, bool]:
    """Create an order (state `created`) for a version the registry says may be delivered; returns it and
    whether it is new.

    The registry is asked first: a version that does not exist in the tenant is NotFound (404), one that
    is not released NotDeliverable (409); the bundle's source is the version's `artifact_uri` from the
    registry. With an idempotency key this tenant used already, returns that key's order (however many
    requests race with it), or 422 when the key came with another request.
    """
    fingerprint = request_fingerprint(request)
    if idempotency_key is not None:
        async with db.session() as session:
            if (existing := await _by_key(session, tenant, idempotency_key)) is not None:
                return _replay(existing, fingerprint, idempotency_key), False
    version = await registry.deliverable(tenant, request.model_version_id, actor)
    _check_against_registry(request, version)
    name = _model_name(request, version)
    mirror = request.mirror_to_shared_dir
    if mirror is None:
        mirror = settings.delivery_shared_dir is not None
    elif mirror and settings.delivery_shared_dir is None:
        raise BadRequest(
            "mirror_to_shared_dir: this delivery service has no shared folder configured "
            "(FORGE_DELIVERY_SHARED_DIR)"
        )
    bundle = bundle_location(settings.delivery_bucket, tenant, name, version.version)
    order = DeliveryOrder(
        id=uuid7(),
        tenant_id=tenant,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        created_by=actor,
        model_version_id=version.version_id,
        model_id=version.project_id,
        model_name=name,
        model_version=version.version,
        deployment_id=request.deployment_id,
        target=request.target,
        format=request.format,
        source_uri=version.artifact_uri,
        bundle_uri=bundle.uri,
        card=request.card.model_dump(mode="json"),
        inference=request.inference.model_dump(mode="json"),
        mirror=mirror,
    )
    try:
        async with db.transaction() as session:
            if idempotency_key is not None:
                await _lock_key(session, tenant, idempotency_key)
                if (existing := await _by_key(session, tenant, idempotency_key)) is not None:
                    return _replay(existing, fingerprint, idempotency_key), False
            live = await _live_for_bundle(session, tenant, name, version.version)
            if live is not None:
                raise Conflict(
                    f"{name} version {version.version} already has delivery order "
                    f"{live.id} in state {live.state!r}; cancel it or wait for it to fail first"
                )
            session.add(order)
            created = DeliveryOrderCreated(
                **_base(order),  # type: ignore[arg-type]
                actor=actor,
                deployment_id=order.deployment_id,
                target="model_files",
                format="safetensors",
            )
            await _emit(session, order, created)
    except IntegrityError:
        # A concurrent create (another key, or none) won the race for the same bundle location.
        raise Conflict(f"{name} version {version.version} already has a live delivery order") from None
    return order, True


async def get_order(db: Database, tenant: str, order_id: str) -> DeliveryOrder:
    """The tenant's order; another tenant's is not found."""
    async with db.session() as session:
        order = await session.get(DeliveryOrder, order_id)
    if order is None or order.tenant_id != tenant:
        raise NotFound(f"delivery order {order_id!r} does not exist")
    return order


async def order_by_id(db: Database, order_id: str) -> DeliveryOrder:
    """Any tenant's order (for the service's own background steps)."""
    async with db.session() as session:
        order = await session.get(DeliveryOrder, order_id)
    if order is None:
        raise NotFound(f"delivery order {order_id!r} does not exist")
    return order


async def list_orders(
    db: Database,
    tenant: str,
    *,
    model_version_id: str | None = None,
    state: str | None = None,
    limit: int = 100,
) -> list[DeliveryOrder]:
    """The tenant's orders, newest first."""
    statement = select(DeliveryOrder).where(DeliveryOrder.tenant_id == tenant)
    if model_version_id is not None:
        statement = statement.where(DeliveryOrder.model_version_id == model_version_id)
    if state is not None:
        statement = statement.where(DeliveryOrder.state == state)
    statement = statement.order_by(col(DeliveryOrder.id).desc()).limit(limit)
    async with db.session() as session:
        return list((await session.exec(statement)).all())


async def stale_orders(db: Database, older_than_s: float) -> list[str]:
    """Unfinished orders nobody has touched for `older_than_s` (their runner died with its process)."""
    cutoff = _now() - timedelta(seconds=older_than_s)
    statement = select(DeliveryOrder.id).where(
        col(DeliveryOrder.state).in_(ACTIVE_STATES), col(DeliveryOrder.updated_at) < cutoff
    )
    async with db.session() as session:
        return list((await session.exec(statement)).all())


async def cancel_order(
    db: Database, tenant: str, order_id: str, *, actor: str | None, reason: str | None
) -> DeliveryOrder:
    """Cancel an unfinished order; its running steps stop at their next check and remove what they wrote."""
    async with db.transaction() as session:
        order = await _locked(session, order_id, tenant)
        step = MACHINE.transition(order.state, "cancel")
        event = DeliveryOrderCancelled(
            **_base(order),  # type: ignore[arg-type]
            actor=actor,
            from_state=order.state,  # type: ignore[arg-type]
            reason=reason,
        )
        order.state = step.target
        await _emit(session, order, event)
    return order


async def start_packaging(db: Database, order_id: str) -> DeliveryOrder:
    async with db.transaction() as session:
        order = await _locked(session, order_id)
        step = MACHINE.transition(order.state, "start_packaging")
        order.state = step.target
        order.progress_stage = "packaging"
        event = DeliveryOrderPackagingStarted(**_base(order), actor=ACTOR, from_state="created")  # type: ignore[arg-type]
        await _emit(session, order, event)
    return order


async def record_progress(
    db: Database,
    order_id: str,
    *,
    state: str,
    files_done: int,
    files_total: int,
    bytes_done: int,
    bytes_total: int,
    written_keys: Sequence[str] | None = None,
) -> None:
    """Progress of the running stage (not a state change, so no event). Raises OrderInterrupted when the
    order is no longer in `state` (cancelled meanwhile), so the step stops."""
    async with db.transaction() as session:
        order = await _locked(session, order_id)
        if order.state != state:
            raise OrderInterrupted(f"delivery order {order_id} is {order.state!r}, no longer {state!r}")
        order.progress_stage = state
        order.files_done, order.files_total = files_done, files_total
        order.bytes_done, order.bytes_total = bytes_done, bytes_total
        if written_keys is not None:
            order.written_keys = list(written_keys)
        order.updated_at = _now()
        session.add(order)


async def finish_packaging(db: Database, order_id: str, files: Sequence[BundleFile]) -> DeliveryOrder:
    async with db.transaction() as session:
        order = await _locked(session, order_id)
        step = MACHINE.transition(order.state, "finish_packaging")
        order.state = step.target
        order.files = [f.model_dump() for f in files]
        event = DeliveryOrderPackaged(
            **_base(order),  # type: ignore[arg-type]
            actor=ACTOR,
            from_state="packaging",
            bundle_uri=order.bundle_uri,
            files=list(files),
        )
        await _emit(session, order, event)
    return order


async def start_publishing(db: Database, order_id: str) -> DeliveryOrder:
    async with db.transaction() as session:
        order = await _locked(session, order_id)
        step = MACHINE.transition(order.state, "publish")
        order.state = step.target
        order.progress_stage = "publishing"
        order.files_done = order.bytes_done = 0
        event = DeliveryOrderPublishingStarted(
            **_base(order),  # type: ignore[arg-type]
            actor=ACTOR,
            from_state="packaged",
            target="model_files",
        )
        await _emit(session, order, event)
    return order


async def deliver(
    db: Database,
    order_id: str,
    *,
    shared_path: str | None,
    before_commit: Callable[[], Awaitable[None]] | None = None,
) -> DeliveryOrder:
    """The order is delivered: emits `forge.delivery.model.delivered.v1`. `before_commit` runs with the
    order locked and the transition checked (it puts the shared-folder mirror in place)."""
    async with db.transaction() as session:
        order = await _locked(session, order_id)
        step = MACHINE.transition(order.state, "deliver")
        files = [BundleFile.model_validate(f) for f in order.files]
        event = ModelDelivered(
            **_base(order),  # type: ignore[arg-type]
            actor=ACTOR,
            from_state="publishing",
            model_id=order.model_id,
            model_name=order.model_name,
            model_version=order.model_version,
            format="safetensors",
            target="model_files",
            bundle_uri=order.bundle_uri,
            files=files,
        )
        if before_commit is not None:
            await before_commit()
        order.state = step.target
        order.shared_path = shared_path
        await _emit(session, order, event)
    return order


async def fail_order(db: Database, order_id: str, error: str) -> DeliveryOrder:
    """Record a failure; an order that already ended (cancelled, delivered) is left as it is."""
    async with db.transaction() as session:
        order = await _locked(session, order_id)
        if MACHINE.is_terminal(order.state):
            return order
        stage = order.state
        step = MACHINE.transition(stage, "fail")
        message = error.strip()[:MAX_ERROR_CHARS] or "unknown error"
        event = DeliveryOrderFailed(
            **_base(order),  # type: ignore[arg-type]
            from_state=stage,  # type: ignore[arg-type]
            error=message,
            stage=stage,  # type: ignore[arg-type]
        )
        order.state = step.target
        order.error = message
        order.failed_stage = stage
        await _emit(session, order, event)
    return order
