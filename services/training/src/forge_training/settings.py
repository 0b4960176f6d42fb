"""The training service's settings: the kit's ServiceSettings plus where job outputs go and how long a
training run may go silent."""

from __future__ import annotations

from pathlib import Path

from forge_contracts.activities import dataset, registry
from forge_kit.settings import ServiceSettings
from pydantic import Field


class TrainingSettings(ServiceSettings):
    """Read like every service's settings (`FORGE_*` environment variables win)."""

    training_bucket: str = Field(
        default="forge-training",
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="The bucket holding checkpoints, adapters and merged models; created if missing.",
    )
    heartbeat_timeout_s: float = Field(
        default=30.0, gt=0, description="How long a training run may go silent before Temporal retries it."
    )
    run_attempts: int = Field(default=5, ge=1, description="Attempts of one training run (each resumes).")
    progress_interval_s: float = Field(
        default=0.5, gt=0, description="How often progress, metrics and logs are written to the database."
    )
    work_dir: Path | None = Field(default=None, description="Where runs keep local files (default: tmp).")
    runtime_threads: int | None = Field(default=None, ge=1, description="CPU threads of the runtime.")
    dataset_task_queue: str = Field(
        default=dataset.TASK_QUEUE,
        min_length=1,
        description="The dataset service's task queue: where dataset versions are resolved.",
    )
    registry_task_queue: str = Field(
        default=registry.TASK_QUEUE,
        min_length=1,
        description="The registry's task queue: where base models and model versions are resolved.",
    )
    resolve_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="How long resolving a request's Forge ids may take."
    )

    @classmethod
    def from_service_settings(cls, settings: ServiceSettings) -> TrainingSettings:
        """These settings from the kit's (the training fields from their defaults or the environment)."""
        if isinstance(settings, TrainingSettings):
            return settings
        return cls(**settings.model_dump())
