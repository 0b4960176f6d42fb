"""Activities of the scheduler service (task queue `forge-scheduler`): ask for compute, run a registered
workload on it, give it back.

    grant = await workflow.execute_activity(
        REQUEST_ALLOCATION, AllocationRequest(...), result_type=AllocationGrant,
        task_queue=TASK_QUEUE, start_to_close_timeout=timedelta(minutes=10), heartbeat_timeout=...)
    result = await workflow.execute_activity(
        RUN_ON_ALLOCATION, RunSpec(...), result_type=RunResult, task_queue=TASK_QUEUE,
        start_to_close_timeout=timedelta(hours=12), heartbeat_timeout=timedelta(seconds=30))

`request_allocation` is idempotent by the caller's `request_key` (the same key with the same request
means the same allocation; the same key with another request is refused); `run_on_allocation` runs a
registered `Workload` (never a caller's program: the scheduler renders each kind from its typed
parameters), heartbeats `RunProgress` while it runs and kills it when the activity is cancelled;
`attach_workload` marks an admitted allocation running for a workload its owner runs itself (the
training worker runs its runtime), so the scheduler accounts for it until it is released;
`release_allocation` is a no-op on an allocation that already ended.
"""

from __future__ import annotations

import json
import math
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    Strict,
    StringConstraints,
    field_validator,
    model_validator,
)

from forge_contracts.events.base import Id, TenantId

TASK_QUEUE = "forge-scheduler"
REQUEST_ALLOCATION = "scheduler.request_allocation"
RUN_ON_ALLOCATION = "scheduler.run_on_allocation"
RELEASE_ALLOCATION = "scheduler.release_allocation"
ATTACH_WORKLOAD = "scheduler.attach_workload"

AcceleratorKind = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9.-]+/[A-Za-z0-9._-]+$", max_length=253),
]
"""An extended resource name, e.g. `nvidia.com/gpu` or `huawei.com/Ascend910`."""

AllocationState = Literal[
    "requested", "queued", "admitted", "running", "preempted", "released", "rejected", "cancelled"
]
WorkloadKind = Literal["training_job", "evaluation_job", "dataset_task", "notebook"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WorkerResources(_Model):
    """What one worker (one process, one pod) of a gang needs."""

    cpu_millis: int = Field(ge=1, le=10_000_000, description="CPU in millicores (1000 = one core).")
    memory_bytes: int = Field(ge=1, description="Memory in bytes.")
    accelerators: dict[AcceleratorKind, Annotated[int, Field(ge=0, le=1024)]] = Field(
        default_factory=dict,
        description="Accelerators by kind, at most one kind with a non-zero count per worker.",
    )

    @model_validator(mode="after")
    def _one_accelerator_kind(self) -> WorkerResources:
        used = [kind for kind, count in self.accelerators.items() if count > 0]
        if len(used) > 1:
            raise ValueError(f"a worker may use one accelerator kind, not {len(used)}: {', '.join(used)}")
        return self


RegisteredKind = Literal["gang-probe", "training-runtime"]
"""The workloads the scheduler runs: it renders each from its typed parameters and never runs a program
(argv, environment, working directory) a caller names."""

_MAX_SPEC_CHARS = 256 * 1024
_MAX_SPEC_DEPTH = 16


def _json_integer(value: Any) -> Any:
    if isinstance(value, bool | str | bytes | bytearray):
        raise ValueError("Input should be a valid integer (a JSON integer, not a bool or text)")
    return value


_StrictInt = Annotated[int, BeforeValidator(_json_integer)]
"""A JSON integer (`3.0` is one, as JSON Schema says), never a bool or a numeric string."""
_StrictFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]


class GangProbeParams(_Model):
    """`gang-probe`: each worker prints `<message> from <rank> of <world size>`, holds for `hold_s`
    seconds (sleeping, or spinning on a CPU when `busy`; a file named `proceed` in the job's folder ends
    the hold early), then exits with `exit_code`. For checking that a gang starts, that limits and
    cancellation work, and the local runs' tests."""

    message: Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]*$", max_length=200)] = Field(
        default="ready", description="What each worker prints before its rank."
    )
    exit_code: _StrictInt = Field(default=0, ge=0, le=255, description="Each worker's exit status.")
    hold_s: _StrictFloat = Field(default=0, ge=0, le=86_400, description="How long each worker runs.")
    busy: Annotated[bool, Strict()] = Field(default=False, description="Spin on a CPU while holding.")


def _confined(value: Any, where: str, depth: int = 0) -> None:
    """Refuse what could reach outside the job's folder: an absolute path, `~`, a `..` segment, NUL; and
    NaN or infinities (the runtime reads JSON)."""
    if depth > _MAX_SPEC_DEPTH:
        raise ValueError(f"{where} is nested deeper than {_MAX_SPEC_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            _confined(key, f"a key of {where}", depth + 1)
            _confined(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _confined(item, f"{where}[{index}]", depth + 1)
    elif isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where} contains NUL")
        if value.startswith(("/", "~", "\\")) or ".." in PurePosixPath(value.replace("\\", "/")).parts:
            raise ValueError(
                f"{where} = {value!r}: paths in a spec are relative to the job's folder and stay in it"
            )
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is not a finite number")


class TrainingRuntimeParams(_Model):
    """`training-runtime`: `python -m forge_training_runtime <command> --spec <file>`, the spec written
    by the scheduler into the job's folder (the workers' working directory) from the data given here.
    The runtime validates the spec itself (unknown fields are refused); paths in it are relative to the
    job's folder and may not leave it."""

    command: Literal["train", "evaluate"] = Field(description="The runtime's command.")
    spec: dict[Annotated[str, StringConstraints(max_length=128)], JsonValue] = Field(
        description="The runtime's spec for `command` (`TrainSpec` or `EvaluateSpec`), as data."
    )

    @field_validator("spec")
    @classmethod
    def _bounded_and_confined(cls, spec: dict[str, Any]) -> dict[str, Any]:
        _confined(spec, "spec")
        if len(json.dumps(spec)) > _MAX_SPEC_CHARS:
            raise ValueError(f"the spec is larger than {_MAX_SPEC_CHARS} characters")
        return spec


class _Workload(_Model):
    max_address_space_bytes: _StrictInt | None = Field(
        default=None, ge=1 << 20, le=2**53 - 1, description="RLIMIT_AS per worker process, where given."
    )
    max_cpu_time_s: _StrictInt | None = Field(
        default=None, ge=1, le=30 * 86_400, description="RLIMIT_CPU per worker process, where given."
    )


class GangProbe(_Workload):
    kind: Literal["gang-probe"]
    params: GangProbeParams = Field(default_factory=GangProbeParams)


class TrainingRuntime(_Workload):
    kind: Literal["training-runtime"]
    params: TrainingRuntimeParams


Workload = Annotated[GangProbe | TrainingRuntime, Field(discriminator="kind")]
"""What an allocation's workers run: a registered kind (`kind`) with that kind's typed `params`, and
optional per-worker limits. An unknown kind, or parameters the kind does not take, are refused."""


class AllocationRequest(_Model):
    """Ask for compute for one workload; the same `request_key` with the same request returns the same
    allocation, with a different request it is refused (non-retryable `Unprocessable`)."""

    request_key: str = Field(min_length=1, max_length=200, description="Caller's idempotency key.")
    tenant_id: TenantId
    project_id: Id
    priority: int = Field(default=0, ge=0, le=1000, description="Higher is admitted first.")
    gang_size: int = Field(default=1, ge=1, le=1024, description="Workers that must start together.")
    per_worker: WorkerResources
    workload_kind: WorkloadKind = "training_job"
    workload_id: Id | None = Field(default=None, description="The job or task; default: the allocation.")
    workload: Workload | None = Field(default=None, description="If given, it runs once admitted.")
    command: None = Field(
        default=None, description="Removed (the scheduler runs no caller's argv): only null is accepted."
    )
    actor: str | None = Field(default=None, max_length=256, description="Who asks, e.g. `service:training`.")
    wait_for_admission_s: float = Field(
        default=0, ge=0, le=86_400, description="Wait (heartbeating) up to this long while it is queued."
    )


class AllocationGrant(_Model):
    """The allocation as it stands when the activity returns."""

    allocation_id: Id
    state: AllocationState
    admitted: bool = Field(description="Whether the resources are held (admitted or running).")
    rejection_reason: str | None = None
    queue: str | None = Field(default=None, description="The scheduler queue it waits in (its project's).")


class RunSpec(_Model):
    """Run a workload on an admitted allocation (or attach to its run if it already started)."""

    tenant_id: TenantId
    allocation_id: Id
    workload: Workload | None = Field(default=None, description="Default: the one given at request.")
    command: None = Field(
        default=None, description="Removed (the scheduler runs no caller's argv): only null is accepted."
    )
    heartbeat_interval_s: float = Field(default=2.0, ge=0.05, le=60)
    log_tail_lines: int = Field(default=5, ge=0, le=200, description="Log lines sent with each heartbeat.")


class RunProgress(_Model):
    """Heartbeat details of `run_on_allocation`."""

    allocation_id: Id
    elapsed_s: float
    last_lines: list[str]


class RunResult(_Model):
    """How the run ended."""

    allocation_id: Id
    state: AllocationState = Field(description="`released` when the workers ended, or `cancelled`.")
    exit_code: int | None = Field(description="The first non-zero exit code of the gang, else 0.")
    succeeded: bool
    log_dir: str
    log_files: list[str]


class ReleaseRequest(_Model):
    """Give an allocation back: stops its processes if it runs, cancels it if it never ran."""

    tenant_id: TenantId
    allocation_id: Id
    reason: str | None = Field(default=None, max_length=4000)


class ReleaseResult(_Model):
    allocation_id: Id
    state: AllocationState


class AttachWorkload(_Model):
    """An admitted allocation's workload started outside the scheduler's backend: admitted -> running
    (idempotent: an allocation already running is returned as it is)."""

    tenant_id: TenantId
    allocation_id: Id
    runner: str = Field(min_length=1, max_length=512, description="Who runs it, e.g. `training-job/<id>`.")
    nodes: list[str] = Field(default_factory=list, description="Where it runs, when known.")


__all__ = [
    "ATTACH_WORKLOAD",
    "RELEASE_ALLOCATION",
    "REQUEST_ALLOCATION",
    "RUN_ON_ALLOCATION",
    "TASK_QUEUE",
    "AcceleratorKind",
    "AllocationGrant",
    "AllocationRequest",
    "AllocationState",
    "AttachWorkload",
    "GangProbe",
    "GangProbeParams",
    "RegisteredKind",
    "ReleaseRequest",
    "ReleaseResult",
    "RunProgress",
    "RunResult",
    "RunSpec",
    "TrainingRuntime",
    "TrainingRuntimeParams",
    "WorkerResources",
    "Workload",
    "WorkloadKind",
]
