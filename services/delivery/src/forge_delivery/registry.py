"""What delivery asks the registry: the model version an order delivers, by id, in the order's tenant.

The registry is the only source of where a version's model files are (`artifact_uri`) and of whether it
may be delivered (released, through the gate or an audited override); a caller never names a location.
The question runs as `CheckVersionWorkflow` on delivery's own task queue, whose one activity runs on the
registry's (Temporal activities are only called from workflows).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from forge_contracts.activities.registry import NOT_FOUND, VersionDescription
from forge_kit.errors import Conflict, NotFound, Unavailable
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from forge_delivery.settings import DeliverySettings
from forge_delivery.workflows import CheckVersionWorkflow, VersionCheck


class NotDeliverable(Conflict):
    """The version exists but the registry's release gate does not let it be delivered now."""


def refusal(version: VersionDescription) -> str:
    """Why `version` may not be delivered (the 409's detail, a failed order's `error`)."""
    what = f"model version {version.version_id} (version {version.version} of {version.project_name!r})"
    if version.state == "delivered":
        return f"{what} was delivered already"
    return (
        f"{what} is {version.state!r}, not released: only a released version (through the release gate "
        "or an approved override) is delivered"
    )


class Registry:
    """Asks the registry through Temporal (the client is the running service's, connected at start)."""

    def __init__(
        self, settings: DeliverySettings, client: Callable[[], Client | None], task_queue: str
    ) -> None:
        self.settings = settings
        self.task_queue = task_queue
        self._client = client

    async def describe(self, tenant: str, version_id: str, actor: str | None = None) -> VersionDescription:
        """The version as the registry knows it: NotFound (404) for none in this tenant, Unavailable (503)
        when the registry does not answer in time."""
        client = self._client()
        if client is None:
            raise Unavailable("the delivery service is not connected to Temporal yet")
        check = VersionCheck(
            tenant_id=tenant,
            version_id=version_id,
            actor=actor,
            registry_task_queue=self.settings.registry_task_queue,
        )
        try:
            return await client.execute_workflow(
                CheckVersionWorkflow.run,
                check,
                id=f"delivery-check-version-{uuid.uuid4()}",
                task_queue=self.task_queue,
                execution_timeout=timedelta(seconds=self.settings.registry_timeout_s),
            )
        except WorkflowFailureError as error:
            failure = _application_error(error)
            if failure is not None and failure.type == NOT_FOUND:
                raise NotFound(f"model version {version_id!r} does not exist") from None
            raise Unavailable(
                f"the registry could not be asked about model version {version_id}: {error.cause}"
            ) from None
        except RPCError as error:
            raise Unavailable(
                f"the registry could not be asked about model version {version_id}: {error}"
            ) from None

    async def deliverable(self, tenant: str, version_id: str, actor: str | None = None) -> VersionDescription:
        """The version, when the registry says it may be delivered; else NotFound (404) or
        NotDeliverable (409)."""
        version = await self.describe(tenant, version_id, actor)
        if not version.deliverable:
            raise NotDeliverable(refusal(version))
        return version


def _application_error(error: BaseException) -> ApplicationError | None:
    """The ApplicationError at the root of a workflow failure (the activity's typed error), if any."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, ApplicationError):
            return current
        current = getattr(current, "cause", None) or current.__cause__
    return None
