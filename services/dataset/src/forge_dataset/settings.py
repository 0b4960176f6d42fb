"""The dataset service's settings: the kit's ServiceSettings plus where its objects go."""

from __future__ import annotations

import os
from pathlib import Path

from forge_kit.settings import ServiceSettings
from forge_kit.stack_env import env_file_path, read_env_file
from pydantic import Field, SecretStr

CONNECTIONS_KEY_ENV = "FORGE_DATASET_CONNECTIONS_KEY"


class DatasetSettings(ServiceSettings):
    """Read like every service's settings (`FORGE_*` environment variables win)."""

    dataset_bucket: str = Field(
        default="forge-datasets",
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="The bucket holding every dataset file and manifest; created if missing.",
    )
    upload_part_bytes: int = Field(
        default=8 * 1024 * 1024, ge=5 * 1024 * 1024, description="Multipart upload part size (S3: ≥ 5 MiB)."
    )
    upload_parts_in_flight: int = Field(
        default=4,
        ge=1,
        le=32,
        description="Parts of one upload sent to S3 at once while the next is read (holds that many + 1).",
    )

    import_allowed_networks: list[str] = Field(
        default_factory=list,
        description=(
            "Networks (CIDR) imports may fetch from although not public, e.g. a lab mirror; "
            "everything else private, loopback or link-local is refused."
        ),
    )
    import_max_file_bytes: int = Field(
        default=64 * 1024**3, ge=1, description="The largest file an import takes."
    )
    work_dir: Path | None = Field(
        default=None, description="Where background tasks spill to local disk (unset: the temp dir)."
    )
    dataset_connections_key: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "The key connection secrets are sealed with (at least 16 characters; `forge stack up` writes "
            "one to the env file). Unset: connections cannot be registered or used (503)."
        ),
    )
    sql_import_timeout_s: float = Field(
        default=3600.0, gt=0, description="The longest a SQL import's query may run (statement timeout)."
    )

    ray_address: str | None = Field(
        default=None,
        description=(
            "An existing Ray cluster processing pipelines run on (`ray://head:10001`, e.g. KubeRay's head "
            "service). Unset: each run starts an embedded Ray sized to the scheduler's allocation."
        ),
    )
    registry_task_queue: str = Field(
        default="forge-registry",
        description="The registry's task queue: where a task's registered models are resolved.",
    )
    processing_shard_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="A JSONL record file is processed in byte ranges of this size, in parallel.",
    )
    processing_link_ttl_s: int = Field(
        default=24 * 3600,
        ge=60,
        le=7 * 24 * 3600,
        description="How long the pre-signed links a processing run reads its record files through live.",
    )

    @classmethod
    def for_service(cls, service: str, **overrides: object) -> ServiceSettings:
        """The kit's settings plus the connections key from the stack env file (the environment wins)."""
        if CONNECTIONS_KEY_ENV not in os.environ and "dataset_connections_key" not in overrides:
            if written := read_env_file(env_file_path()).get(CONNECTIONS_KEY_ENV):
                overrides["dataset_connections_key"] = written
        return super().for_service(service, **overrides)

    @classmethod
    def from_service_settings(cls, settings: ServiceSettings) -> DatasetSettings:
        """These settings from the kit's (the dataset fields from their defaults or the environment)."""
        if isinstance(settings, DatasetSettings):
            return settings
        return cls(**settings.model_dump())
