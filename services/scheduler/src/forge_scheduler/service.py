"""Use cases of the scheduler: one function per command, one transaction each, every allocation
transition checked by the `allocation` machine and published through the outbox in that transaction.

Locking: a use case that changes what a project holds (request, release, cancel, quota) locks the
project row first, then the allocation rows; starting a run locks only the allocation (it never takes
the project lock after it), so these never deadlock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from forge_contracts.activities.scheduler import Workload
from forge_contracts.envelope import uuid7
from forge_contracts.events.base import ResourceRequest
from forge_contracts.events.scheduler import (
    AllocationAdmitted,
    AllocationCancelled,
    AllocationEvent,
    AllocationQueued,
    AllocationRejected,
    AllocationReleased,
    AllocationRequested,
    AllocationStarted,
)
from forge_contracts.state_machines import MACHINES, IllegalTransition
from forge_kit import outbox
from forge_kit.db import Database
from forge_kit.errors import BadRequest, Conflict, ForgeError, NotFound, Unprocessable
from forge_kit.observability import logger
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_scheduler import domain, workloads
from forge_scheduler.backends import (
    BackendError,
    JobHandle,
    JobStatus,
    LocalBackend,
    LocalJobSpec,
    WorkerLog,
)
from forge_scheduler.schemas import AllocationCreate, ProjectCreate, Quota, ResourceUsage, UsageView
from forge_scheduler.tables import Allocation, Project, Tenant

MACHINE = MACHINES["allocation"]
HOLDING = ("admitted", "running")
"""States whose allocations count against the quota."""
POOL = "local"

log = logger(component="scheduler")


@dataclass
class Scheduler:
    """What the use cases work with: the database, the compute backend, where job folders go, a clock,
    the interpreter workloads run with, and the tasks watching running jobs."""

    db: Database
    backend: LocalBackend
    jobs_dir: Path
    clock: domain.Clock = domain.utc_now
    python: str = sys.executable
    watchers: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    async def close(self) -> None:
        """Stop every local job and record how its allocation ended (before the database closes)."""
        await self.backend.stop_all()
        if self.watchers:
            await asyncio.wait(list(self.watchers.values()), timeout=10)


# ---------------------------------------------------------------- projects and quotas


async def create_project(s: Scheduler, tenant: str, body: ProjectCreate) -> Project:
    now = s.clock()
    try:
        async with s.db.transaction() as session:
            await session.exec(insert(Tenant).values(id=tenant, created_at=now).on_conflict_do_nothing())
            if await _project_named(session, tenant, body.name) is not None:
                raise Conflict(f"project {body.name!r} already exists in tenant {tenant!r}")
            project = Project(
                id=uuid7(),
                tenant_id=tenant,
                name=body.name,
                description=body.description,
                queue=domain.queue_name(tenant, body.name),
                created_at=now,
            )
            session.add(project)
    except IntegrityError:  # a concurrent create of the same name won
        raise Conflict(f"project {body.name!r} already exists in tenant {tenant!r}") from None
    return project


async def _project_named(session: AsyncSession, tenant: str, name: str) -> Project | None:
    query = select(Project).where(Project.tenant_id == tenant, Project.name == name)
    return (await session.exec(query)).first()


async def projects(s: Scheduler, tenant: str) -> list[Project]:
    async with s.db.session() as session:
        query = select(Project).where(Project.tenant_id == tenant).order_by(col(Project.created_at))
        return list((await session.exec(query)).all())


async def project(s: Scheduler, tenant: str, project_id: str) -> Project:
    async with s.db.session() as session:
        return await _project(session, tenant, project_id)


async def _project(session: AsyncSession, tenant: str, project_id: str, *, lock: bool = False) -> Project:
    query = select(Project).where(Project.id == project_id, Project.tenant_id == tenant)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found = (await session.exec(query)).first()
    if found is None:
        raise NotFound(f"project {project_id!r} does not exist")
    return found


async def set_quota(s: Scheduler, tenant: str, project_id: str, quota: Quota) -> Project:
    """Replace a project's quota; queued allocations that can now never fit are rejected, those that now
    fit are admitted (and started when they carry a workload)."""
    now = s.clock()
    async with s.db.transaction() as session:
        found = await _project(session, tenant, project_id, lock=True)
        found.quota_cpu_millis = quota.cpu_millis
        found.quota_memory_bytes = quota.memory_bytes
        found.quota_accelerators = dict(quota.accelerators)
        found.quota_updated_at = now
        session.add(found)
        for waiting in await _allocations_of(session, found.id, ("queued",)):
            reason = domain.never_fits_reason(waiting.per_worker(), waiting.gang_size, found.quota())
            if reason is not None:
                await _reject(session, waiting, reason, now)
        admitted = await _admit_waiting(session, found, now)
    await _start_workloads(s, admitted)
    return found


async def usage(s: Scheduler, tenant: str, project_id: str) -> UsageView:
    async with s.db.session() as session:
        found = await _project(session, tenant, project_id)
        active = await _allocations_of(
            session, found.id, ("requested", "queued", *HOLDING, "preempted"), lock=False
        )
    used = domain.total(
        domain.demand(a.per_worker(), a.gang_size) for a in active if a.state in HOLDING
    ).amounts()
    quota = found.quota()
    limits = {"cpu_millis": quota.cpu_millis, "memory_bytes": quota.memory_bytes, **quota.accelerators}
    names = list(dict.fromkeys([*limits, *used]))
    counts: dict[str, int] = {}
    for allocation in active:
        counts[allocation.state] = counts.get(allocation.state, 0) + 1
    return UsageView(
        project_id=found.id,
        resources=[
            ResourceUsage(
                resource=name,
                used=used.get(name, 0),
                quota=limits.get(name, 0),
                available=limits.get(name, 0) - used.get(name, 0),
            )
            for name in names
        ],
        allocations=counts,
    )


# ---------------------------------------------------------------- allocations: queries


async def allocation(s: Scheduler, tenant: str, allocation_id: str) -> Allocation:
    async with s.db.session() as session:
        return await _allocation(session, tenant, allocation_id)


async def allocations(
    s: Scheduler, tenant: str, *, project_id: str | None = None, state: str | None = None
) -> list[Allocation]:
    async with s.db.session() as session:
        query = select(Allocation).where(Allocation.tenant_id == tenant)
        if project_id is not None:
            query = query.where(Allocation.project_id == project_id)
        if state is not None:
            query = query.where(Allocation.state == state)
        return list((await session.exec(query.order_by(col(Allocation.created_at)))).all())


async def _allocation(
    session: AsyncSession, tenant: str, allocation_id: str, *, lock: bool = False
) -> Allocation:
    query = select(Allocation).where(Allocation.id == allocation_id, Allocation.tenant_id == tenant)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found = (await session.exec(query)).first()
    if found is None:
        raise NotFound(f"allocation {allocation_id!r} does not exist")
    return found


async def _allocations_of(
    session: AsyncSession, project_id: str, states: Sequence[str], *, lock: bool = True
) -> list[Allocation]:
    query = (
        select(Allocation)
        .where(Allocation.project_id == project_id, col(Allocation.state).in_(states))
        .order_by(col(Allocation.created_at), col(Allocation.id))
    )
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return list((await session.exec(query)).all())


async def _by_request_key(session: AsyncSession, tenant: str, key: str) -> Allocation | None:
    query = select(Allocation).where(Allocation.tenant_id == tenant, Allocation.request_key == key)
    return (await session.exec(query)).first()


# ---------------------------------------------------------------- allocations: commands


async def request_allocation(
    s: Scheduler, tenant: str, actor: str | None, body: AllocationCreate
) -> tuple[Allocation, bool]:
    """Record a request, then reject it (it can never fit), or queue it and admit what the project's queue
    now allows. Returns the allocation and whether it was created (False: the request key was known, with
    the same request; with another one it is a 422)."""
    now = s.clock()
    digest = request_digest(body)
    try:
        async with s.db.transaction() as session:
            found = await _project(session, tenant, body.project_id, lock=True)
            if body.request_key and (known := await _by_request_key(session, tenant, body.request_key)):
                return _same_request(known, digest), False
            new = _new_allocation(tenant, actor, found, body, now, digest)
            session.add(new)
            await _emit(session, new, _requested(new, now))
            reason = domain.never_fits_reason(new.per_worker(), new.gang_size, found.quota())
            admitted: list[Allocation] = []
            if reason is not None:
                await _reject(session, new, reason, now)
            else:
                await session.flush()
                waiting = [_waiting(a) for a in await _allocations_of(session, found.id, ("queued",))]
                await _move(
                    session,
                    new,
                    "enqueue",
                    AllocationQueued,
                    now,
                    position=domain.position(new.id, [*waiting, _waiting(new)]),
                )
                admitted = await _admit_waiting(session, found, now)
    except IntegrityError:  # the same request key, concurrently, in another project
        async with s.db.session() as session:
            if body.request_key and (known := await _by_request_key(session, tenant, body.request_key)):
                return _same_request(known, digest), False
        raise
    await _start_workloads(s, admitted)
    return await allocation(s, tenant, new.id), True


def request_digest(body: AllocationCreate) -> str:
    """What identifies a request besides its key: SHA-256 of its canonical JSON (defaults filled in,
    zero accelerator counts dropped), so the same request sent again matches whichever way it is
    spelt."""
    data = body.model_dump(mode="json", exclude={"request_key"})
    data["per_worker"]["accelerators"] = {k: v for k, v in data["per_worker"]["accelerators"].items() if v}
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _same_request(known: Allocation, digest: str) -> Allocation:
    """The allocation a request key already names, if it was asked for with the same request."""
    if known.request_digest is not None and known.request_digest != digest:
        raise Unprocessable(
            f"request_key {known.request_key!r} was already used for another request (allocation "
            f"{known.id}); send the same request again, or use a new key"
        )
    return known


def _new_allocation(
    tenant: str, actor: str | None, found: Project, body: AllocationCreate, now: datetime, digest: str
) -> Allocation:
    allocation_id = uuid7()
    return Allocation(
        id=allocation_id,
        tenant_id=tenant,
        project_id=found.id,
        request_key=body.request_key,
        request_digest=digest if body.request_key else None,
        state=MACHINE.initial,
        priority=body.priority,
        gang_size=body.gang_size,
        cpu_millis=body.per_worker.cpu_millis,
        memory_bytes=body.per_worker.memory_bytes,
        accelerators={k: v for k, v in body.per_worker.accelerators.items() if v},
        workload_kind=body.workload_kind,
        workload_id=body.workload_id or allocation_id,
        queue=found.queue,
        actor=actor,
        workload=body.workload.model_dump(mode="json") if body.workload else None,
        created_at=now,
    )


def _requested(new: Allocation, now: datetime) -> AllocationRequested:
    kind, count = next(iter(new.accelerators.items()), (None, 0))
    return AllocationRequested(
        **_fields(new, now),
        workload_kind=new.workload_kind,
        workload_id=new.workload_id,
        resources=ResourceRequest(
            cpu_cores=new.cpu_millis / 1000,
            memory_bytes=new.memory_bytes,
            accelerator=kind,
            accelerator_count=count,
            replicas=new.gang_size,
        ),
        priority=new.priority,
    )


async def _reject(session: AsyncSession, target: Allocation, reason: str, now: datetime) -> None:
    await _move(session, target, "reject", AllocationRejected, now, code="quota_exceeded", reason=reason)
    target.rejection_code = "quota_exceeded"
    target.reason = reason
    target.ended_at = now


def _waiting(item: Allocation) -> domain.Waiting:
    return domain.Waiting(
        item.id, item.priority, item.created_at, domain.demand(item.per_worker(), item.gang_size)
    )


async def _admit_waiting(session: AsyncSession, found: Project, now: datetime) -> list[Allocation]:
    """Admit the project's queued allocations that fit now, in queue order (the project row is locked)."""
    rows = await _allocations_of(session, found.id, ("queued", *HOLDING))
    used = domain.total(domain.demand(a.per_worker(), a.gang_size) for a in rows if a.state in HOLDING)
    queued = {a.id: a for a in rows if a.state == "queued"}
    admitted = []
    for allocation_id in domain.admissible([_waiting(a) for a in queued.values()], used, found.quota()):
        chosen = queued[allocation_id]
        await _move(session, chosen, "admit", AllocationAdmitted, now, pool=POOL)
        chosen.admitted_at = now
        admitted.append(chosen)
    return admitted


async def _start_workloads(s: Scheduler, admitted: Sequence[Allocation]) -> None:
    """Start the newly admitted allocations that carry a workload; one that cannot start is cancelled."""
    for item in admitted:
        if item.workload is None:
            continue
        try:
            await run_allocation(s, item.tenant_id, item.id, None)
        except IllegalTransition:
            continue  # someone else started or cancelled it meanwhile
        except BadRequest as error:
            log.warning("allocation.start_failed", allocation_id=item.id, error=error.detail)
            with contextlib.suppress(IllegalTransition):
                await cancel_allocation(s, item.tenant_id, item.id, f"could not start: {error.detail}", None)


async def run_allocation(
    s: Scheduler, tenant: str, allocation_id: str, workload: Workload | None
) -> Allocation:
    """Start an admitted allocation's gang on the local backend running `workload` (or the one given at
    request); the workers' exit releases the allocation."""
    handle: JobHandle | None = None
    try:
        async with s.db.transaction() as session:
            target = await _allocation(session, tenant, allocation_id, lock=True)
            MACHINE.transition(target.state, "start")  # fail before starting anything
            spec = workload or workloads.recorded(target.workload)
            if spec is None:
                raise BadRequest("no workload to run: give one in the body or when requesting the allocation")
            handle = await _start_job(s, target, spec)
            target.workload = spec.model_dump(mode="json")
            target.log_dir = str(handle.log_dir)
            await _start(session, target, s.clock(), handle.backend, handle.ref, handle.nodes)
    except BaseException:
        if handle is not None:
            await s.backend.discard(handle)
        raise
    s.watchers[allocation_id] = asyncio.create_task(_watch(s, allocation_id, handle), name=allocation_id)
    return target


async def attach_workload(
    s: Scheduler, tenant: str, allocation_id: str, runner: str, nodes: Sequence[str]
) -> Allocation:
    """admitted -> running for a workload its owner runs itself (nothing of ours runs): from now on its
    usage counts until it is released. An allocation already running is returned unchanged."""
    async with s.db.transaction() as session:
        target = await _allocation(session, tenant, allocation_id, lock=True)
        if target.state == "running":
            return target
        MACHINE.transition(target.state, "start")  # 409 unless admitted
        await _start(session, target, s.clock(), "local", runner, nodes)
    return target


async def _start(
    session: AsyncSession, target: Allocation, now: datetime, backend: str, ref: str, nodes: Sequence[str]
) -> None:
    """admitted -> running on `backend` (`ref`: its handle), with the `started` event."""
    target.backend, target.backend_ref, target.started_at = backend, ref, now
    await _move(
        session, target, "start", AllocationStarted, now, backend=backend, backend_ref=ref, nodes=list(nodes)
    )


async def _start_job(s: Scheduler, target: Allocation, spec: Workload) -> JobHandle:
    """Render the workload into the job's own folder and start its gang there."""
    job_dir = s.jobs_dir / target.id
    rendered = workloads.render(spec, job_dir, s.python)
    try:
        await asyncio.to_thread(_write_files, job_dir, rendered.files)
    except OSError as error:
        raise BadRequest(f"cannot prepare the job's folder {job_dir}: {error.strerror or error}") from error
    job = LocalJobSpec(
        job_id=target.id,
        argv=rendered.argv,
        gang_size=target.gang_size,
        log_dir=job_dir,
        env={"FORGE_ALLOCATION_ID": target.id, "FORGE_PROJECT_ID": target.project_id},
        working_dir=job_dir,
        max_address_space_bytes=spec.max_address_space_bytes,
        max_cpu_time_s=spec.max_cpu_time_s,
    )
    try:
        return await s.backend.start(job)
    except BackendError as error:
        raise BadRequest(str(error)) from error


def _write_files(job_dir: Path, files: Mapping[str, str]) -> None:
    job_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (job_dir / name).write_text(text, encoding="utf-8")


async def _watch(s: Scheduler, allocation_id: str, handle: JobHandle) -> None:
    """Wait for a job's end and record it; retried, since a lost result would hold the quota forever."""
    try:
        status = await s.backend.wait(handle)
        for attempt in range(6):
            try:
                await _finish_run(s, allocation_id, status)
                return
            except Exception:  # the database may be briefly away; each failure is logged
                log.exception("allocation.finish_failed", allocation_id=allocation_id, attempt=attempt)
                if attempt == 5:
                    raise
                await asyncio.sleep(0.5 * 2**attempt)
    finally:
        s.backend.forget(handle)
        s.watchers.pop(allocation_id, None)


async def _finish_run(s: Scheduler, allocation_id: str, status: JobStatus) -> None:
    now = s.clock()
    admitted: list[Allocation] = []
    async with s.db.transaction() as session:
        current = await session.get(Allocation, allocation_id)
        if current is None:
            return
        found = await _project(session, current.tenant_id, current.project_id, lock=True)
        target = await _allocation(session, current.tenant_id, allocation_id, lock=True)
        if target.exit_code is None:
            target.exit_code = status.exit_code
        if target.state == "running":
            await _release(session, target, now, f"workers exited with code {status.exit_code}")
            admitted = await _admit_waiting(session, found, now)
        session.add(target)
    await _start_workloads(s, admitted)


async def _release(session: AsyncSession, target: Allocation, now: datetime, reason: str) -> None:
    started = target.started_at or now
    spent = domain.usage_of(target.per_worker(), target.gang_size, started, now)
    await _move(
        session,
        target,
        "release",
        AllocationReleased,
        now,
        duration_s=spent.duration_s,
        cpu_core_seconds=spent.cpu_core_seconds,
        accelerator_seconds=spent.accelerator_seconds,
    )
    target.ended_at = now
    target.reason = reason


async def release_allocation(s: Scheduler, tenant: str, allocation_id: str, actor: str | None) -> Allocation:
    """Give back a running allocation: stop its workers and release it (409 unless it runs)."""
    return await _end(s, tenant, allocation_id, "release", actor, None)


async def cancel_allocation(
    s: Scheduler, tenant: str, allocation_id: str, reason: str | None, actor: str | None
) -> Allocation:
    """Cancel an allocation in any non-final state; its workers, if any, are killed."""
    return await _end(s, tenant, allocation_id, "cancel", actor, reason)


async def _end(
    s: Scheduler, tenant: str, allocation_id: str, how: str, actor: str | None, reason: str | None
) -> Allocation:
    async with s.db.session() as session:
        project_id = (await _allocation(session, tenant, allocation_id)).project_id
    async with s.db.transaction() as session:
        found = await _project(session, tenant, project_id, lock=True)
        target = await _allocation(session, tenant, allocation_id, lock=True)
        MACHINE.transition(target.state, how)  # 409 before anything is stopped
        if target.state == "running" and target.backend_ref and s.backend.knows(target.backend_ref):
            stopped = await s.backend.stop(_handle(target))
            target.exit_code = stopped.exit_code
        now = s.clock()
        if how == "release":
            await _release(session, target, now, reason or "released")
        else:
            await _move(session, target, "cancel", AllocationCancelled, now, actor=actor, reason=reason)
            target.ended_at = now
            target.reason = reason
        admitted = await _admit_waiting(session, found, now)
    await _start_workloads(s, admitted)
    return target


def _handle(target: Allocation) -> JobHandle:
    return JobHandle(target.backend or "local", target.backend_ref or target.id, Path(target.log_dir or "."))


async def allocation_logs(
    s: Scheduler, tenant: str, allocation_id: str, tail: int
) -> tuple[Allocation, list[WorkerLog]]:
    found = await allocation(s, tenant, allocation_id)
    if found.log_dir is None:
        return found, []
    return found, await s.backend.logs(_handle(found), tail)


# ---------------------------------------------------------------- events


def _fields(target: Allocation, now: datetime, actor: str | None = None) -> dict[str, Any]:
    return {
        "tenant_id": target.tenant_id,
        "occurred_at": now,
        "actor": actor or target.actor,
        "allocation_id": target.id,
        "project_id": target.project_id,
        "queue": target.queue,
    }


async def _move(
    session: AsyncSession,
    target: Allocation,
    name: str,
    event: type[AllocationEvent],
    now: datetime,
    *,
    actor: str | None = None,
    **details: Any,
) -> None:
    """Apply transition `name` (IllegalTransition if not allowed) and publish its one event."""
    step = MACHINE.transition(target.state, name)
    if step.event_type != event.event_type:
        raise RuntimeError(f"transition {name!r} emits {step.event_type}, not {event.event_type}")
    payload = event(**_fields(target, now, actor), from_state=target.state, **details)
    target.state = step.target
    await _emit(session, target, payload)


async def _emit(session: AsyncSession, target: Allocation, payload: AllocationEvent) -> None:
    target.sequence += 1
    session.add(target)
    await outbox.publish(session, payload.to_envelope(sequence=target.sequence))


__all__ = [
    "ForgeError",
    "Scheduler",
    "Unprocessable",
    "allocation",
    "allocation_logs",
    "allocations",
    "attach_workload",
    "cancel_allocation",
    "create_project",
    "project",
    "projects",
    "release_allocation",
    "request_allocation",
    "request_digest",
    "run_allocation",
    "set_quota",
    "usage",
]
