"""Settings of the delivery service: the kit's service settings plus where bundles go."""

from __future__ import annotations

from pathlib import Path

from forge_contracts.activities.registry import TASK_QUEUE as REGISTRY_TASK_QUEUE
from forge_kit.settings import ServiceSettings
from pydantic import Field


class DeliverySettings(ServiceSettings):
    """`FORGE_DELIVERY_BUCKET`, `FORGE_DELIVERY_SHARED_DIR` and where the registry listens, on top of the
    kit's settings."""

    delivery_bucket: str = Field(
        default="forge-bundles",
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="The bucket bundles are written to (created when missing).",
    )
    delivery_shared_dir: Path | None = Field(
        default=None,
        description="Shared folder (NFS/CephFS mount) bundles are mirrored to (DL-1); none: no mirror.",
    )
    registry_task_queue: str = Field(
        default=REGISTRY_TASK_QUEUE,
        min_length=1,
        description="The registry's Temporal task queue (asked whether a version may be delivered).",
    )
    registry_timeout_s: float = Field(
        default=30.0, gt=0, description="How long an order waits for the registry's answer."
    )
    resume_stale_after_s: float = Field(
        default=120.0, gt=0, description="At start, resume unfinished orders untouched for this long."
    )

    @classmethod
    def of(cls, settings: ServiceSettings, **overrides: object) -> DeliverySettings:
        """Delivery settings from plain service settings (environment variables fill the rest)."""
        if isinstance(settings, DeliverySettings) and not overrides:
            return settings
        values = settings.model_dump()
        values.update(overrides)
        return cls(**values)
