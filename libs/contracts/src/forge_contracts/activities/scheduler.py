"""Activities of the scheduler service (task queue `forge-scheduler`): ask for compute, run a command on
it, give it back.

    grant = await workflow.execute_activity(
        REQUEST_ALLOCATION, AllocationRequest(...), result_type=AllocationGrant,
        task_queue=TASK_QUEUE, start_to_close_timeout=timedelta(minutes=10), heartbeat_timeout=...)
    result = await workflow.execute_activity(
        RUN_ON_ALLOCATION, RunSpec(...), result_type=RunResult, task_queue=TASK_QUEUE,
        start_to_close_timeout=timedelta(hours=12), heartbeat_timeout=timedelta(seconds=30))

`request_allocation` is idempotent by the caller's `request_key` (the same key always means the same
allocation); `run_on_allocation` heartbeats `RunProgress` while the command runs and kills it when the
activity is cancelled; `attach_workload` marks an admitted allocation running for a workload its owner
runs itself (the training worker runs its runtime), so the scheduler accounts for it until it is
released; `release_allocation` is a no-op on an allocation that already ended.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

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


class CommandSpec(_Model):
    """The command each worker of a gang runs (an argv list, never a shell string)."""

    argv: list[Annotated[str, StringConstraints(min_length=1, max_length=4096)]] = Field(
        min_length=1, max_length=1024, description="Program and arguments."
    )
    env: dict[
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=256)],
        Annotated[str, StringConstraints(max_length=32_768)],
    ] = Field(default_factory=dict, description="Extra environment variables (TR-8).")
    working_dir: str | None = Field(
        default=None, max_length=4096, description="Absolute working directory; default: the job's folder."
    )
    max_address_space_bytes: int | None = Field(
        default=None, ge=1 << 20, description="RLIMIT_AS per worker process, where given."
    )
    max_cpu_time_s: int | None = Field(default=None, ge=1, description="RLIMIT_CPU per worker process.")


class AllocationRequest(_Model):
    """Ask for compute for one workload; the same `request_key` always returns the same allocation."""

    request_key: str = Field(min_length=1, max_length=200, description="Caller's idempotency key.")
    tenant_id: TenantId
    project_id: Id
    priority: int = Field(default=0, ge=0, le=1000, description="Higher is admitted first.")
    gang_size: int = Field(default=1, ge=1, le=1024, description="Workers that must start together.")
    per_worker: WorkerResources
    workload_kind: WorkloadKind = "training_job"
    workload_id: Id | None = Field(default=None, description="The job or task; default: the allocation.")
    command: CommandSpec | None = Field(default=None, description="If given, it runs once admitted.")
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
    """Run a command on an admitted allocation (or attach to its run if it already started)."""

    tenant_id: TenantId
    allocation_id: Id
    command: CommandSpec | None = Field(default=None, description="Default: the command given at request.")
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
    state: AllocationState = Field(description="`released` when the command ended, or `cancelled`.")
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
    "CommandSpec",
    "ReleaseRequest",
    "ReleaseResult",
    "RunProgress",
    "RunResult",
    "RunSpec",
    "WorkerResources",
    "WorkloadKind",
]
