"""Temporal activities on the delivery task queue (models in forge_contracts.activities.delivery)."""

from __future__ import annotations

from forge_contracts.activities.delivery import (
    DELIVER_MODEL,
    DELIVERY_FAILED,
    DeliverModel,
    DeliveryResult,
)
from forge_contracts.events.delivery import BundleFile
from forge_kit.errors import ForgeError, Unavailable
from temporalio import activity
from temporalio.exceptions import ApplicationError

from forge_delivery import service
from forge_delivery.domain import CHECKSUMS, MANIFEST, parse_s3_uri
from forge_delivery.pipeline import OrderContext, is_finished, run_order
from forge_delivery.schemas import CreateDeliveryOrder
from forge_delivery.tables import DeliveryOrder


def result_of(order: DeliveryOrder) -> DeliveryResult:
    bundle = parse_s3_uri(order.bundle_uri)
    return DeliveryResult(
        order_id=order.id,
        state="delivered",
        bundle_uri=order.bundle_uri,
        manifest_uri=f"{bundle.uri}{MANIFEST}",
        checksums_uri=f"{bundle.uri}{CHECKSUMS}",
        files=[BundleFile.model_validate(f) for f in order.files],
        shared_path=order.shared_path,
    )


class DeliveryActivities:
    """The activities, bound to the running service's database, settings and object storage."""

    def __init__(self, ctx: OrderContext) -> None:
        self.ctx = ctx

    @activity.defn(name=DELIVER_MODEL)
    async def deliver_model(self, request: DeliverModel) -> DeliveryResult:
        """Create (or find, by model version + request key) the order and run it to its end. The registry
        is asked first, like for the HTTP API: a version that is not released (409) or not in the tenant
        (404) fails the activity for good; the source is the version's artifact, whatever `source_uri`
        the caller still sends."""
        key = f"{request.model_version_id}:{request.request_key or activity.info().workflow_id}"
        order_request = CreateDeliveryOrder.model_validate(
            request.model_dump(exclude={"tenant_id", "actor", "request_key", "source_uri"})
        )
        try:
            order, _ = await service.create_order(
                self.ctx.db,
                self.ctx.settings,
                self.ctx.registry,
                tenant=request.tenant_id,
                actor=request.actor,
                request=order_request,
                idempotency_key=key,
            )
        except Unavailable as error:
            raise ApplicationError(error.detail, type=type(error).__name__) from error  # retried
        except ForgeError as error:
            raise ApplicationError(
                error.detail, {"status": error.status}, type=type(error).__name__, non_retryable=True
            ) from error
        if not is_finished(order):
            order = await run_order(self.ctx, order.id, report=activity.heartbeat)
        if not is_finished(order):
            # Another runner (a concurrent attempt) moved it on; a retry picks up its outcome.
            raise ApplicationError(
                f"delivery order {order.id} is still {order.state}", type="DeliveryRunning"
            )
        if order.state != "delivered":
            raise ApplicationError(
                f"delivery order {order.id} {order.state}: {order.error or 'cancelled'}",
                {"order_id": order.id, "state": order.state},
                type=DELIVERY_FAILED,
                non_retryable=True,
            )
        return result_of(order)
