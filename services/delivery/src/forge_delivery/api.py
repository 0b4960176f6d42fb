"""HTTP API of delivery orders: parse, call the service, map the result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from forge_contracts.events.base import Id

from forge_delivery import service
from forge_delivery.runtime import DeliveryRuntime, delivery_runtime
from forge_delivery.schemas import (
    CancelDeliveryOrder,
    CreateDeliveryOrder,
    DeliveryOrderList,
    DeliveryOrderView,
)

TENANT_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
Tenant = Annotated[str, Header(alias="x-forge-tenant", pattern=TENANT_PATTERN, description="Owning tenant.")]
User = Annotated[str | None, Header(alias="x-forge-user", max_length=256)]
IdempotencyKey = Annotated[str | None, Header(alias="idempotency-key", min_length=1, max_length=200)]
Delivery = Annotated[DeliveryRuntime, delivery_runtime]

router = APIRouter(prefix="/delivery-orders", tags=["delivery orders"])


@router.post("", status_code=status.HTTP_202_ACCEPTED)
async def create_delivery_order(
    body: CreateDeliveryOrder,
    tenant: Tenant,
    user: User,
    svc: Delivery,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> DeliveryOrderView:
    """Create an order; packing and publishing run in the background (watch `state` and `progress`).
    The same `Idempotency-Key` again returns the first order."""
    order, _ = await service.create_order(
        svc.db,
        svc.delivery_settings,
        tenant=tenant,
        actor=user,
        request=body,
        idempotency_key=idempotency_key,
    )
    svc.runner.launch(order.id)
    response.headers["location"] = str(request.url_for("get_delivery_order", order_id=order.id))
    return DeliveryOrderView.of(order)


@router.get("")
async def list_delivery_orders(
    tenant: Tenant,
    svc: Delivery,
    model_version_id: Annotated[Id | None, Query()] = None,
    state: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveryOrderList:
    orders = await service.list_orders(
        svc.db, tenant, model_version_id=model_version_id, state=state, limit=limit
    )
    return DeliveryOrderList(items=[DeliveryOrderView.of(o) for o in orders])


@router.get("/{order_id}")
async def get_delivery_order(order_id: str, tenant: Tenant, svc: Delivery) -> DeliveryOrderView:
    return DeliveryOrderView.of(await service.get_order(svc.db, tenant, order_id))


@router.post("/{order_id}/cancel")
async def cancel_delivery_order(
    order_id: str, tenant: Tenant, user: User, svc: Delivery, body: CancelDeliveryOrder | None = None
) -> DeliveryOrderView:
    """Cancel an unfinished order (409 once it is delivered, failed or cancelled)."""
    reason = body.reason if body is not None else None
    order = await service.cancel_order(svc.db, tenant, order_id, actor=user, reason=reason)
    return DeliveryOrderView.of(order)
