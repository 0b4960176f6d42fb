"""Request and response models of the scheduler's HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from forge_contracts.activities.scheduler import (
    AcceleratorKind,
    AllocationState,
    WorkerResources,
    Workload,
    WorkloadKind,
)
from forge_contracts.events.base import Id
from forge_kit.types import Line, NonNegativeInt32, NonNegativeInt64, PositiveInt32, PositiveInt64, Text
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from forge_scheduler import workloads
from forge_scheduler.tables import Allocation, Project

DnsLabel = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", max_length=63)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectCreate(_Body):
    name: DnsLabel = Field(description="Unique in the tenant; a DNS label (it names the project's queue).")
    description: Text | None = Field(default=None, max_length=4000)


class Quota(_Body):
    """A project's quota: what its admitted and running allocations may hold together."""

    cpu_millis: NonNegativeInt64 = Field(le=10**12, description="CPU in millicores (1000 = one core).")
    memory_bytes: NonNegativeInt64 = Field(description="Memory in bytes.")
    accelerators: dict[AcceleratorKind, Annotated[NonNegativeInt32, Field(le=1_000_000)]] = Field(
        default_factory=dict, description='By kind, e.g. {"nvidia.com/gpu": 2, "huawei.com/Ascend910": 0}.'
    )


class WorkerRequest(WorkerResources):
    """What one worker of a gang needs, as a request: JSON integers within the allocations table's
    BIGINT columns."""

    cpu_millis: PositiveInt64 = Field(le=10_000_000, description="CPU in millicores (1000 = one core).")
    memory_bytes: PositiveInt64 = Field(description="Memory in bytes.")
    accelerators: dict[AcceleratorKind, Annotated[NonNegativeInt32, Field(le=1024)]] = Field(
        default_factory=dict,
        description="Accelerators by kind, at most one kind with a non-zero count per worker.",
    )


def _as_data(value: Any) -> Any:
    # The scheduler's activities build requests from the contract's models: validate them as data.
    return value.model_dump() if isinstance(value, BaseModel) else value


class ProjectView(BaseModel):
    id: str
    name: str
    description: str | None
    queue: str
    quota: Quota
    created_at: datetime

    @classmethod
    def of(cls, project: Project) -> ProjectView:
        return cls(
            id=project.id,
            name=project.name,
            description=project.description,
            queue=project.queue,
            quota=Quota(
                cpu_millis=project.quota_cpu_millis,
                memory_bytes=project.quota_memory_bytes,
                accelerators=dict(project.quota_accelerators),
            ),
            created_at=project.created_at,
        )


class ResourceUsage(BaseModel):
    resource: str
    used: int
    quota: int
    available: int


class UsageView(BaseModel):
    """RS-3: what a project's admitted and running allocations hold, against its quota."""

    project_id: str
    resources: list[ResourceUsage]
    allocations: dict[str, int] = Field(description="How many allocations are in each non-final state.")


class AllocationCreate(_Body):
    project_id: Line = Field(min_length=1, max_length=64)
    priority: NonNegativeInt32 = Field(default=0, le=1000, description="Higher is admitted first.")
    gang_size: PositiveInt32 = Field(default=1, le=1024, description="Workers that must start together.")
    per_worker: Annotated[WorkerRequest, BeforeValidator(_as_data)]
    workload_kind: WorkloadKind = "training_job"
    workload_id: Id | None = Field(default=None, description="Default: the allocation's own id.")
    request_key: Line | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Idempotency key: the same key with the same request is the same allocation (200); "
        "with another request it is a 422.",
    )
    workload: Workload | None = Field(
        default=None,
        description="A registered workload kind and its parameters; if given, it runs as soon as admitted.",
    )


class CancelBody(_Body):
    reason: Text | None = Field(default=None, min_length=1, max_length=4000)


class AllocationView(BaseModel):
    id: str
    project_id: str
    state: AllocationState
    priority: int
    gang_size: int
    per_worker: WorkerResources
    workload_kind: str
    workload_id: str
    queue: str
    sequence: int
    request_key: str | None
    workload: Workload | None
    rejection_code: str | None
    reason: str | None
    backend: str | None
    backend_ref: str | None
    log_dir: str | None
    exit_code: int | None
    created_at: datetime
    admitted_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None

    @classmethod
    def of(cls, allocation: Allocation) -> AllocationView:
        return cls(
            id=allocation.id,
            project_id=allocation.project_id,
            state=allocation.state,
            priority=allocation.priority,
            gang_size=allocation.gang_size,
            per_worker=WorkerResources(
                cpu_millis=allocation.cpu_millis,
                memory_bytes=allocation.memory_bytes,
                accelerators=dict(allocation.accelerators),
            ),
            workload_kind=allocation.workload_kind,
            workload_id=allocation.workload_id,
            queue=allocation.queue,
            sequence=allocation.sequence,
            request_key=allocation.request_key,
            workload=workloads.recorded(allocation.workload),
            rejection_code=allocation.rejection_code,
            reason=allocation.reason,
            backend=allocation.backend,
            backend_ref=allocation.backend_ref,
            log_dir=allocation.log_dir,
            exit_code=allocation.exit_code,
            created_at=allocation.created_at,
            admitted_at=allocation.admitted_at,
            started_at=allocation.started_at,
            ended_at=allocation.ended_at,
        )


class WorkerLogView(BaseModel):
    rank: int
    path: str
    lines: list[str]


class LogsView(BaseModel):
    allocation_id: str
    state: AllocationState
    workers: list[WorkerLogView]
