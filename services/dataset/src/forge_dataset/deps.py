"""What the dataset service's use cases need: its database, its bucket, the workflow engine and where
background tasks may spill to local disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from forge_kit.db import Database
from forge_kit.errors import Unavailable
from forge_kit.runtime import ServiceRuntime
from temporalio.client import Client

from forge_dataset.connections.crypto import SecretBox
from forge_dataset.objects import ObjectStore


@dataclass(frozen=True)
class Deps:
    runtime: ServiceRuntime
    store: ObjectStore
    work_dir: Path | None = None
    """Where tasks spill (a diff's partitions); the system's temporary directory when None."""
    import_allowed_networks: tuple[str, ...] = ()
    import_max_file_bytes: int = 64 * 1024**3
    secrets: SecretBox = field(default_factory=lambda: SecretBox(""))
    """Seals and opens connection secrets (unconfigured: connections are unavailable)."""
    sql_import_timeout_s: float = 3600.0
    ray_address: str | None = None
    """The Ray cluster pipelines run on; None: an embedded Ray per run."""
    processing_link_ttl_s: int = 24 * 3600
    processing_shard_bytes: int = 64 * 1024 * 1024
    registry_task_queue: str = "forge-registry"
    model_areas: tuple[str, ...] = ()
    """Where the registry's models may be read from (FORGE_MODEL_AREAS), per tenant."""

    @property
    def db(self) -> Database:
        return self.runtime.db

    @property
    def temporal(self) -> Client:
        if self.runtime.temporal is None:
            raise Unavailable("the workflow engine is not connected yet")
        return self.runtime.temporal

    @property
    def task_queue(self) -> str:
        return self.runtime.task_queue
