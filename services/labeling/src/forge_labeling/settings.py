"""The labeling service's settings: the kit's ServiceSettings plus where exports are staged, where the
dataset service listens, and how large a version a project may import."""

from __future__ import annotations

from forge_contracts.activities.dataset import TASK_QUEUE as DATASET_TASK_QUEUE
from forge_kit.settings import ServiceSettings
from pydantic import Field


class LabelingSettings(ServiceSettings):
    """Read like every service's settings (`FORGE_*` environment variables win)."""

    labeling_bucket: str = Field(
        default="forge-labeling",
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="The bucket export files are written to before the dataset service publishes them.",
    )
    dataset_task_queue: str = Field(
        default=DATASET_TASK_QUEUE, min_length=1, description="The dataset service's Temporal task queue."
    )
    import_max_records: int = Field(
        default=100_000, ge=1, description="The most records a labeling project may import (one task each)."
    )
    import_max_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1, description="The largest dataset version a project may import."
    )
    resolve_timeout_s: float = Field(
        default=30.0, gt=0, description="How long creating a project waits for the dataset service."
    )

    @classmethod
    def from_service_settings(cls, settings: ServiceSettings) -> LabelingSettings:
        """These settings from the kit's (the labeling fields from their defaults or the environment)."""
        if isinstance(settings, LabelingSettings):
            return settings
        return cls(**settings.model_dump())
