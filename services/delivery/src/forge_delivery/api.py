"""HTTP API of delivery orders: parse, call the service, map the result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from forge_contracts.events.base import Id
from forge_kit.auth import Principal, allow
from forge_kit.idempotency import IdempotencyKey
from forge_kit.policy import Action

from forge_delivery import service
from forge_delivery.runtime import DeliveryRuntime, delivery_runtime
from forge_delivery.schemas import (
    CancelDeliveryOrder,
    CreateDeliveryOrder,
    DeliveryOrderList,
    DeliveryOrderView,
)

CanDeliveryRead = Annotated[Principal, allow(Action.DELIVERY_READ)]
CanDeliveryOrder = Annotated[Principal, allow(Action.DELIVERY_ORDER)]
Delivery = Annotated[DeliveryRuntime, delivery_runtime]

router = APIRouter(prefix="/delivery-orders", tags=["delivery orders"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={200: {"description": "the order this Idempotency-Key created already"}},
)
async def create_delivery_order(
    body: CreateDeliveryOrder,
    caller: CanDeliveryOrder,
    svc: Delivery,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> DeliveryOrderView:
    """Create an order for a released model version (the registry is asked first: 404 for no such version
    in the tenant, 409 for one not released); packing and publishing run in the background (watch
    `state` and `progress`). The same `Idempotency-Key` with the same request returns the first order
    (200), with another request 422."""
    order, created = await service.create_order(
        svc.db,
        svc.delivery_settings,
        svc.registry,
        tenant=caller.tenant_id,
        actor=caller.actor,
        request=body,
        idempotency_key=idempotency_key,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    svc.runner.launch(order.id)
    response.headers["location"] = str(request.url_for("get_delivery_order", order_id=order.id))
    return DeliveryOrderView.of(order)


@router.get("")
async def list_delivery_orders(
    caller: CanDeliveryRead,
    svc: Delivery,
    model_version_id: Annotated[Id | None, Query()] = None,
    state: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveryOrderList:
    orders = await service.list_orders(
        svc.db, caller.tenant_id, model_version_id=model_version_id, state=state, limit=limit
    )
    return DeliveryOrderList(items=[DeliveryOrderView.of(o) for o in orders])


@router.get("/{order_id}")
async def get_delivery_order(order_id: str, caller: CanDeliveryRead, svc: Delivery) -> DeliveryOrderView:
    return DeliveryOrderView.of(await service.get_order(svc.db, caller.tenant_id, order_id))


@router.post("/{order_id}/cancel")
async def cancel_delivery_order(
    order_id: str, caller: CanDeliveryOrder, svc: Delivery, body: CancelDeliveryOrder | None = None
) -> DeliveryOrderView:
    """Cancel an unfinished order (409 once it is delivered, failed or cancelled)."""
    reason = body.reason if body is not None else None
    order = await service.cancel_order(svc.db, caller.tenant_id, order_id, actor=caller.actor, reason=reason)
    return DeliveryOrderView.of(order)
