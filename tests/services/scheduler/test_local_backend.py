"""The local backend on its own (below anything a caller reaches: the scheduler gives it only the argv it
rendered from a registered workload kind): whole gangs start or none does, stop kills every worker, and a
worker inherits none of the service's settings."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from forge_scheduler.backends import BackendError, LocalBackend, LocalJobSpec


def _job(tmp_path: Path, name: str, argv: list[str], gang_size: int = 1) -> LocalJobSpec:
    return LocalJobSpec(job_id=name, argv=argv, gang_size=gang_size, log_dir=tmp_path / name)


async def test_stopping_a_gang_terminates_every_worker(tmp_path: Path) -> None:
    backend = LocalBackend(stop_grace_s=2)
    sleep = shutil.which("sleep")
    assert sleep is not None
    handle = await backend.start(_job(tmp_path, "sleepers", [sleep, "600"], gang_size=2))
    assert (await backend.status(handle)).state == "running"

    stopped = await backend.stop(handle)

    assert (stopped.state, stopped.exit_codes, stopped.exit_code) == ("failed", (-15, -15), -15)
    await backend.stop_all()


async def test_a_program_that_cannot_start_starts_no_worker(tmp_path: Path) -> None:
    backend = LocalBackend()

    with pytest.raises(BackendError, match="/no/such/program"):
        await backend.start(_job(tmp_path, "missing", ["/no/such/program"], gang_size=3))

    assert not backend.knows("missing")


async def test_a_worker_inherits_none_of_the_services_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORGE_DATABASE_URL", "postgresql://scheduler:secret@db/scheduler")
    env = shutil.which("env")
    assert env is not None
    backend = LocalBackend()
    handle = await backend.start(_job(tmp_path, "env", [env], gang_size=1))

    assert (await backend.wait(handle)).exit_code == 0

    seen = dict(line.split("=", 1) for line in (await backend.logs(handle, 200))[0].lines if "=" in line)
    assert "FORGE_DATABASE_URL" not in seen
    assert (seen["FORGE_WORKER_RANK"], seen["WORLD_SIZE"]) == ("0", "1")
    assert seen["PATH"] == os.environ["PATH"]
