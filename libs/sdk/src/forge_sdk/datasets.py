"""Datasets through the SDK: naming versions by id or alias, streaming uploads with progress, and following
a dataset task to its end."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from forge_sdk.client import ApiError, Service

ALIAS = re.compile(r"^[a-z][a-z0-9._-]{0,62}$")
UPLOAD_CHUNK = 1024 * 1024
ENDED = ("succeeded", "failed", "cancelled")


class TaskFailed(RuntimeError):
    """A dataset task ended without succeeding (the task as last seen in `task`)."""

    def __init__(self, task: dict[str, Any]) -> None:
        super().__init__(
            f"the {task['kind']} task {task['id']} {task['state']}: {task.get('error') or ''}".rstrip(": ")
        )
        self.task = task


class Datasets:
    def __init__(self, api: Service) -> None:
        self.api = api

    def list(self) -> list[dict[str, Any]]:
        return list(self.api.get("/datasets"))

    def create(self, name: str, **fields: Any) -> dict[str, Any]:
        body = {"source": "upload", **fields, "name": name}
        created: dict[str, Any] = self.api.post("/datasets", json=body)
        return created

    def version_id(self, dataset_id: str, ref: str) -> str:
        """A version's id from its id or an alias of the dataset (`latest`, `golden`)."""
        try:
            return str(self.api.get(f"/datasets/{dataset_id}/versions/{ref}")["id"])
        except ApiError as error:
            if error.status != 404 or not ALIAS.match(ref):
                raise
            try:
                return str(self.api.get(f"/datasets/{dataset_id}/aliases/{ref}")["version_id"])
            except ApiError as missing:
                if missing.status != 404:
                    raise
                raise ApiError(404, f"version {ref!r} of dataset {dataset_id!r} does not exist") from None

    def upload_file(
        self,
        dataset_id: str,
        version_id: str,
        path: Path,
        *,
        name: str | None = None,
        params: dict[str, str] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> Any:
        """Stream one file into a draft version (`on_progress(bytes)` after each chunk sent)."""

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as file:
                while chunk := file.read(UPLOAD_CHUNK):
                    if on_progress is not None:
                        on_progress(len(chunk))
                    yield chunk

        return self.api.put(
            f"/datasets/{dataset_id}/versions/{version_id}/files/{name or path.name}",
            params=params,
            content=chunks(),
            timeout=None,
        )

    def task(self, dataset_id: str, task_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.api.get(f"/datasets/{dataset_id}/tasks/{task_id}")
        return found

    def follow(
        self,
        dataset_id: str,
        task: dict[str, Any],
        *,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        interval_s: float = 0.5,
    ) -> dict[str, Any]:
        """Poll a task to its end (`on_progress(task)` on every poll); TaskFailed unless it succeeded."""
        while True:
            task = self.task(dataset_id, task["id"])
            if on_progress is not None:
                on_progress(task)
            if task["state"] in ENDED:
                break
            time.sleep(interval_s)
        if task["state"] != "succeeded":
            raise TaskFailed(task)
        return task


__all__ = ["ALIAS", "Datasets", "TaskFailed"]
