"""The registered workload kinds and how the scheduler renders each into what a backend runs.

A caller never gives a program: it names a kind (`forge_contracts.activities.scheduler.Workload`) and
that kind's typed parameters; the program, its arguments, its environment and its working directory
(the job's own folder) all come from here. Adding a kind means a parameters model and a `Workload`
variant in the contract, and a branch in `render`.

| kind | runs (each worker, in the job's folder) |
|---|---|
| `gang-probe` | `<python> -m forge_scheduler.probe --params gang-probe.json` |
| `training-runtime` | `<python> -m forge_training_runtime <train or evaluate> --spec <command>.spec.json` |
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import assert_never, get_args

from forge_contracts.activities.scheduler import GangProbe, RegisteredKind, TrainingRuntime, Workload
from pydantic import TypeAdapter

KINDS: tuple[str, ...] = get_args(RegisteredKind)
"""Every kind the scheduler runs."""

WORKLOAD: TypeAdapter[Workload] = TypeAdapter(Workload)


def recorded(data: Mapping[str, object] | None) -> Workload | None:
    """A workload as recorded with an allocation (its JSON), if there is one."""
    return WORKLOAD.validate_python(data) if data else None


PROBE_MODULE = "forge_scheduler.probe"
RUNTIME_MODULE = "forge_training_runtime"


@dataclass(frozen=True)
class Rendered:
    """What a workload becomes: each worker's argv, and the files written into the job's folder first."""

    argv: list[str]
    files: Mapping[str, str] = field(default_factory=dict)


def render(workload: Workload, job_dir: Path, python: str) -> Rendered:
    """The argv (with `python` as the interpreter) and files of `workload`, for a job in `job_dir`."""
    if isinstance(workload, GangProbe):
        params = job_dir / "gang-probe.json"
        return Rendered(
            [python, "-m", PROBE_MODULE, "--params", str(params)],
            {params.name: workload.params.model_dump_json()},
        )
    if isinstance(workload, TrainingRuntime):
        command = workload.params.command
        spec = job_dir / f"{command}.spec.json"
        return Rendered(
            [python, "-m", RUNTIME_MODULE, command, "--spec", str(spec)],
            {spec.name: json.dumps(workload.params.spec)},
        )
    assert_never(workload)


__all__ = ["KINDS", "WORKLOAD", "Rendered", "recorded", "render"]
