"""The dataset service's settings: the kit's ServiceSettings plus where its objects go."""

from __future__ import annotations

from pathlib import Path

from forge_kit.settings import ServiceSettings
from pydantic import Field


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

    @classmethod
    def from_service_settings(cls, settings: ServiceSettings) -> DatasetSettings:
        """These settings from the kit's (the dataset fields from their defaults or the environment)."""
        if isinstance(settings, DatasetSettings):
            return settings
        return cls(**settings.model_dump())
