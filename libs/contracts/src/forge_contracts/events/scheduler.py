"""Events of the scheduler service: allocations of compute (topic `forge.scheduler.events`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from forge_contracts.events.base import EntityEvent, Id, ResourceRequest, Text, after, before, example

_ALLOCATION = {
    "tenant_id": "acme",
    "occurred_at": "2025-03-03T12:00:05Z",
    "allocation_id": "01956a01-0000-7000-8000-00000000a111",
    "project_id": "01956900-aaaa-7bbb-8ccc-000000000001",
    "queue": "acme-research",
}


class AllocationEvent(EntityEvent):
    """Fields of every allocation event; the aggregate is the allocation."""

    aggregate_field: ClassVar[str] = "allocation_id"

    allocation_id: Id = Field(description="The allocation (the aggregate id, the Kafka key).")
    project_id: Id = Field(description="The project whose quota it counts against.")
    queue: str = Field(min_length=1, max_length=63, description="The scheduler queue (a Volcano queue).")


class AllocationRequested(AllocationEvent):
    """A workload asked the scheduler for compute."""

    event_type: ClassVar[str] = "forge.scheduler.allocation.requested.v1"
    model_config = example(
        {
            **_ALLOCATION,
            "actor": "service:training",
            "to_state": "requested",
            "workload_kind": "training_job",
            "workload_id": "01956a00-3c4d-7e5f-8a6b-7c8d9e0f1a2b",
            "resources": {
                "cpu_cores": 8,
                "memory_bytes": 68719476736,
                "accelerator": "nvidia.com/gpu",
                "accelerator_count": 2,
                "replicas": 1,
            },
            "priority": 50,
        }
    )

    to_state: Literal["requested"] = after("requested")
    workload_kind: Literal["training_job", "evaluation_job", "dataset_task", "notebook"] = Field(
        description="What kind of work needs the compute."
    )
    workload_id: Id = Field(description="The job, task or notebook.")
    resources: ResourceRequest = Field(description="What it asks for.")
    priority: int = Field(default=0, ge=0, le=1000, description="Higher is admitted first and may preempt.")
    pool: str | None = Field(default=None, max_length=63, description="A resource pool it is pinned to.")


class AllocationQueued(AllocationEvent):
    """A request is valid and waits in its queue for quota and capacity."""

    event_type: ClassVar[str] = "forge.scheduler.allocation.queued.v1"
    model_config = example({**_ALLOCATION, "from_state": "requested", "to_state": "queued", "position": 3})

    from_state: Literal["requested"] = before()
    to_state: Literal["queued"] = after("queued")
    position: int | None = Field(default=None, ge=0, description="Its position in the queue when queued.")


class AllocationRejected(AllocationEvent):
    """A request can never be satisfied (over the hard quota, no matching pool) and was rejected."""

    event_type: ClassVar[str] = "forge.scheduler.allocation.rejected.v1"
    model_config = example(
        {
            **_ALLOCATION,
            "from_state": "requested",
            "to_state": "rejected",
            "code": "quota_exceeded",
            "reason": "asks 16 nvidia.com/gpu; project quota is 8",
        }
    )

    from_state: Literal["requested", "queued"] = before()
    to_state: Literal["rejected"] = after("rejected")
    code: Literal["quota_exceeded", "no_matching_pool", "invalid_request"] = Field(
        description="Why, for code."
    )
    reason: Text = Field(description="Why, for people.")


class AllocationAdmitted(AllocationEvent):
    """Quota and capacity were reserved for the request in a resource pool."""

    event_type: ClassVar[str] = "forge.scheduler.allocation.admitted.v1"
    model_config = example(
        {**_ALLOCATION, "from_state": "queued", "to_state": "admitted", "pool": "a100-80g"}
    )

    from_state: Literal["queued"] = before()
    to_state: Literal["admitted"] = after("admitted")
    pool: str = Field(min_length=1, max_length=63, description="The resource pool it was admitted to.")


class AllocationStarted(AllocationEvent):
    """The compute backend placed the workload (all gang members are running)."""

    event_type: ClassVar[str] = "forge.scheduler.allocation.started.v1"
    model_config = example(
        {
            **_ALLOCATION,
            "from_state": "admitted",
            "to_state": "running",
            "backend": "volcano",
            "backend_ref": "acme/train-01956a00",
            "nodes": ["gpu-node-07"],
        }
    )

    from_state: Literal["admitted"] = before()
    to_state: Literal["running"] = after("running")
    backend: Literal["local", "volcano"] = Field(description="The compute backend.")
    backend_ref: str = Field(
        min_length=1, description="The backend's handle: a Volcano Job or a local process group."
    )
    nodes: list[str] = Field(default_factory=list, description="Where it runs.")


class AllocationPreempted(AllocationEvent):
    """The scheduler took the resources back for higher-priority work; the workload should checkpoint."""

    event_type: ClassVar[str] = "forge.scheduler.allocation.preempted.v1"
    model_config = example(
        {
            **_ALLOCATION,
            "from_state": "running",
            "to_state": "preempted",
            "reason": "priority 900 job needs the pool",
            "preempted_by_allocation_id": "01956a09-0000-7000-8000-00000000a999",
        }
    )

    from_state: Literal["admitted", "running"] = before()
    to_state: Literal["preempted"] = after("preempted")
    reason: Text = Field(description="Why.")
    preempted_by_allocation_id: Id | None = Field(
        default=None, description="The allocation that took its place."
    )


class AllocationRequeued(AllocationEvent):
    """A preempted allocation is back in its queue."""

    event_type: ClassVar[str] = "forge.scheduler.allocation.requeued.v1"
    model_config = example({**_ALLOCATION, "from_state": "preempted", "to_state": "queued"})

    from_state: Literal["preempted"] = before()
    to_state: Literal["queued"] = after("queued")


class AllocationReleased(AllocationEvent):
    """The workload ended and its resources were returned; usage is final (for cost accounting)."""

    event_type: ClassVar[str] = "forge.scheduler.allocation.released.v1"
    model_config = example(
        {
            **_ALLOCATION,
            "from_state": "running",
            "to_state": "released",
            "duration_s": 5400.0,
            "cpu_core_seconds": 43200.0,
            "accelerator_seconds": 10800.0,
        }
    )

    from_state: Literal["running"] = before()
    to_state: Literal["released"] = after("released")
    duration_s: float = Field(ge=0, description="How long it held resources.")
    cpu_core_seconds: float = Field(ge=0, description="CPU usage, for cost accounting.")
    accelerator_seconds: float = Field(default=0, ge=0, description="Accelerator usage, for cost accounting.")


class AllocationCancelled(AllocationEvent):
    """The workload no longer needs the allocation (it was cancelled, paused or failed)."""

    event_type: ClassVar[str] = "forge.scheduler.allocation.cancelled.v1"
    model_config = example(
        {
            **_ALLOCATION,
            "actor": "service:training",
            "from_state": "queued",
            "to_state": "cancelled",
            "reason": None,
        }
    )

    from_state: Literal["requested", "queued", "admitted", "running", "preempted"] = before()
    to_state: Literal["cancelled"] = after("cancelled")
    reason: Text | None = Field(default=None, description="Why.")
