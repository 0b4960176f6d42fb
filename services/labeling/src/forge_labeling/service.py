"""Use cases of the labeling service: one function per command, each change and its events in one
transaction through the outbox. Remote work (resolving a dataset version, reading its files) happens
before the transaction that makes its result visible, so a failed request leaves nothing half-written."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from forge_contracts.activities.dataset import ResolvedVersion
from forge_contracts.activities.labeling import (
    ExportCompleted,
    ExportedFile,
    ExportFailed,
    ExportRef,
    ExportRequest,
    ExportStatus,
    ImportRecords,
    export_workflow_id,
    import_workflow_id,
)
from forge_contracts.envelope import uuid7
from forge_contracts.events import EVENT_TYPES
from forge_contracts.events.labeling import LabelingTaskCreated
from forge_kit import outbox
from forge_kit.auth import Forbidden, Principal, member_may
from forge_kit.db import Database
from forge_kit.errors import Conflict, NotFound, Unavailable, Unprocessable
from forge_kit.policy import Action
from forge_kit.runtime import ServiceRuntime
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from forge_labeling import domain
from forge_labeling.domain import TASK
from forge_labeling.objects import ObjectStore
from forge_labeling.schemas import ExportCreate, ProjectCreate, TemplateCreate
from forge_labeling.settings import LabelingSettings
from forge_labeling.tables import Annotation, Export, Project, Task, Template
from forge_labeling.workflows import ExportWorkflow, ImportRecordsWorkflow


@dataclass(frozen=True)
class Deps:
    runtime: ServiceRuntime
    settings: LabelingSettings
    store: ObjectStore

    @property
    def db(self) -> Database:
        return self.runtime.db

    @property
    def temporal(self) -> Client:
        if self.runtime.temporal is None:
            raise Unavailable("the workflow engine is not connected yet")
        return self.runtime.temporal


def _now() -> datetime:
    return datetime.now(UTC)


# --- templates --------------------------------------------------------------------------------------


async def create_template(deps: Deps, caller: Principal, body: TemplateCreate) -> Template:
    template = Template(
        id=uuid7(),
        tenant=caller.tenant_id,
        name=body.name,
        kind=body.kind.value,
        labels=list(body.labels),
        text_field=body.text_field,
        instructions=body.instructions,
        created_by=caller.actor,
    )
    try:
        async with deps.db.transaction() as session:
            session.add(template)
    except IntegrityError:
        raise Conflict(f"a template named {body.name!r} already exists") from None
    return template


async def templates(deps: Deps, caller: Principal) -> list[Template]:
    async with deps.db.session() as session:
        query = select(Template).where(Template.tenant == caller.tenant_id).order_by(col(Template.id))
        return list((await session.exec(query)).all())


async def _template(session: AsyncSession, caller: Principal, template_id: str) -> Template:
    query = select(Template).where(Template.id == template_id, Template.tenant == caller.tenant_id)
    if (found := (await session.exec(query)).first()) is None:
        raise NotFound(f"template {template_id!r} does not exist")
    return found


async def template(deps: Deps, caller: Principal, template_id: str) -> Template:
    async with deps.db.session() as session:
        return await _template(session, caller, template_id)


# --- projects ---------------------------------------------------------------------------------------


async def create_project(
    deps: Deps, caller: Principal, body: ProjectCreate
) -> tuple[Project, dict[str, int]]:
    """Resolve the dataset version (through the dataset service), read its records and create the
    project with one open task per record, all in one transaction (one `created` event per task)."""
    async with deps.db.session() as session:
        tool = await _template(session, caller, body.template_id)
    project_id = uuid7()
    resolved = await _resolve(deps, caller, body, project_id)
    found = await _read_items(deps, resolved, tool.text_field)
    project = Project(
        id=project_id,
        tenant=caller.tenant_id,
        name=body.name,
        template_id=tool.id,
        dataset_id=resolved.dataset_id,
        dataset_version_id=resolved.version_id,
        dataset_version_number=resolved.number,
        task_count=len(found),
        created_by=caller.actor,
    )
    try:
        async with deps.db.transaction() as session:
            session.add(project)
            await session.flush()
            for position, item in enumerate(found):
                await _create_task(session, caller, project, tool, position, item)
    except IntegrityError:
        raise Conflict(f"a project named {body.name!r} already exists") from None
    return project, domain.counts_by_state({"open": len(found)})


async def _create_task(
    session: AsyncSession,
    caller: Principal,
    project: Project,
    tool: Template,
    position: int,
    item: domain.Item,
) -> None:
    task = Task(
        id=uuid7(),
        tenant=caller.tenant_id,
        project_id=project.id,
        position=position,
        item_id=item.item_id,
        record=item.record,
        state=TASK.initial,
        sequence=1,
    )
    session.add(task)
    event = LabelingTaskCreated.model_validate(
        {
            "tenant_id": caller.tenant_id,
            "occurred_at": _now(),
            "actor": caller.actor,
            "task_id": task.id,
            "project_id": project.id,
            "dataset_version_id": project.dataset_version_id,
            "item_id": item.item_id,
            "template": tool.kind,
        }
    )
    await outbox.publish(session, event.to_envelope(sequence=task.sequence))


async def _resolve(deps: Deps, caller: Principal, body: ProjectCreate, project_id: str) -> ResolvedVersion:
    """The version's manifest, from `dataset.resolve_version` run by `ImportRecordsWorkflow`."""
    request = ImportRecords(
        tenant_id=caller.tenant_id,
        dataset_id=body.dataset_id,
        version_id=body.version_id,
        dataset_task_queue=deps.settings.dataset_task_queue,
    )
    try:
        return await deps.temporal.execute_workflow(
            ImportRecordsWorkflow.run,
            request,
            id=import_workflow_id(project_id),
            task_queue=deps.runtime.task_queue,
            execution_timeout=timedelta(seconds=deps.settings.resolve_timeout_s),
        )
    except WorkflowFailureError as error:
        failure = _application_error(error)
        if failure is not None and failure.type == "NotFound":
            raise NotFound(
                f"version {body.version_id!r} of dataset {body.dataset_id!r} does not exist"
            ) from None
        if failure is not None and failure.type == "Conflict":
            raise Conflict(failure.message) from None
        raise Unavailable(f"the dataset service could not resolve the version: {error.cause}") from None


def _application_error(error: BaseException) -> ApplicationError | None:
    """The ApplicationError at the root of a workflow failure (the activity's typed error), if any."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, ApplicationError):
            return current
        current = getattr(current, "cause", None) or current.__cause__
    return None


async def _read_items(deps: Deps, resolved: ResolvedVersion, text_field: str) -> list[domain.Item]:
    if resolved.modality != "text":
        raise Unprocessable(f"the dataset is {resolved.modality}: only text datasets can be labeled yet")
    if resolved.item_count > deps.settings.import_max_records:
        raise Unprocessable(
            f"the version holds {resolved.item_count} records, more than {deps.settings.import_max_records}"
        )
    if resolved.size_bytes > deps.settings.import_max_bytes:
        raise Unprocessable(
            f"the version holds {resolved.size_bytes} bytes, more than {deps.settings.import_max_bytes}"
        )
    found: list[domain.Item] = []
    for file in sorted(resolved.files, key=lambda f: f.name):
        data = await deps.store.read_all(resolved.bucket, file.object_key)
        try:
            found.extend(await asyncio.to_thread(domain.items, file.name, data, text_field))
        except domain.InvalidRecords as error:
            raise Unprocessable(str(error)) from None
    return found


async def _project(
    session: AsyncSession, caller: Principal, project_id: str, *, lock: bool = False
) -> Project:
    query = select(Project).where(Project.id == project_id, Project.tenant == caller.tenant_id)
    if lock:
        query = query.with_for_update()
    if (found := (await session.exec(query)).first()) is None:
        raise NotFound(f"project {project_id!r} does not exist")
    return found


async def _counts(session: AsyncSession, project_id: str) -> dict[str, int]:
    query = select(Task.state, func.count()).where(Task.project_id == project_id).group_by(col(Task.state))
    return domain.counts_by_state(dict((await session.exec(query)).all()))


async def project(deps: Deps, caller: Principal, project_id: str) -> tuple[Project, dict[str, int]]:
    """The project and how many of its tasks are in each state (its progress)."""
    async with deps.db.session() as session:
        found = await _project(session, caller, project_id)
        return found, await _counts(session, project_id)


async def projects(deps: Deps, caller: Principal) -> list[tuple[Project, dict[str, int]]]:
    async with deps.db.session() as session:
        query = select(Project).where(Project.tenant == caller.tenant_id).order_by(col(Project.id))
        found = list((await session.exec(query)).all())
        return [(p, await _counts(session, p.id)) for p in found]


async def tasks(
    deps: Deps, caller: Principal, project_id: str, state: str | None, limit: int, offset: int
) -> tuple[list[Task], int]:
    """A page of the project's tasks in record order (optionally in one state), and how many match."""
    async with deps.db.session() as session:
        await _project(session, caller, project_id)
        where = [col(Task.project_id) == project_id, col(Task.tenant) == caller.tenant_id]
        if state is not None:
            where.append(col(Task.state) == state)
        total = (await session.exec(select(func.count()).select_from(Task).where(*where))).one()
        query = select(Task).where(*where).order_by(col(Task.position)).offset(offset).limit(limit)
        return list((await session.exec(query)).all()), int(total)


# --- tasks ------------------------------------------------------------------------------------------


async def _task(session: AsyncSession, caller: Principal, task_id: str, *, lock: bool = False) -> Task:
    query = select(Task).where(Task.id == task_id, Task.tenant == caller.tenant_id)
    if lock:
        query = query.with_for_update()
    if (found := (await session.exec(query)).first()) is None:
        raise NotFound(f"task {task_id!r} does not exist")
    return found


async def task(deps: Deps, caller: Principal, task_id: str) -> tuple[Task, list[Annotation]]:
    """The task with its annotations, oldest first."""
    async with deps.db.session() as session:
        found = await _task(session, caller, task_id)
        query = (
            select(Annotation)
            .where(Annotation.task_id == task_id)
            .order_by(col(Annotation.submitted_at), col(Annotation.id))
        )
        return found, list((await session.exec(query)).all())


async def _move(session: AsyncSession, task: Task, name: str, actor: str | None, **extra: Any) -> None:
    """Apply transition `name` (IllegalTransition -> 409) and add its one event with the next sequence."""
    step = TASK.transition(task.state, name)
    from_state, task.state = task.state, step.target
    task.sequence += 1
    task.updated_at = _now()
    session.add(task)
    payload = EVENT_TYPES[step.event_type].model_validate(
        {
            "tenant_id": task.tenant,
            "occurred_at": task.updated_at,
            "actor": actor,
            "task_id": task.id,
            "project_id": task.project_id,
            "from_state": from_state,
            **extra,
        }
    )
    await outbox.publish(session, payload.to_envelope(sequence=task.sequence))


def _assignee(given: str | None, caller: Principal) -> str:
    """Annotators take tasks themselves; giving one to somebody else is managing the project."""
    who = given or caller.actor
    if who != caller.actor:
        caller.require(Action.LABELING_MANAGE)
    return who


def _by_assignee(found: Task, caller: Principal, name: str) -> None:
    """Only the task's assignee works on it (starts, submits, reworks, skips it); a manager reassigns it
    (unassign) or cancels it instead. Checked after the move is known to be legal (409 first)."""
    TASK.transition(found.state, name)
    if found.assignee and found.assignee != caller.actor and not caller.is_service:
        raise Forbidden(f"task {found.id!r} is assigned to {found.assignee}, not to {caller.actor}")


def _reviewer(given: str | None, caller: Principal) -> str:
    """A review is recorded as the signed-in user's; nobody reviews in another's name."""
    if given is not None and given != caller.actor and not caller.is_service:
        raise Forbidden(f"{caller.actor} may not review as {given!r}")
    return given or caller.actor


async def assign(deps: Deps, caller: Principal, task_id: str, assignee: str | None) -> Task:
    annotator = _assignee(assignee, caller)
    async with deps.db.transaction() as session:
        found = await _task(session, caller, task_id, lock=True)
        if annotator != caller.actor and not await member_may(
            deps.runtime.directory, annotator, caller.tenant_id, Action.LABELING_ANNOTATE
        ):  # tenant-wide, as every role check here (labeling projects are not the directory's projects)
            # Within the caller's own tenant: a task handed to a non-member would be work nobody can do.
            raise Unprocessable(f"assignee: {annotator} is not an annotator in tenant {caller.tenant_id}")
        await _move(session, found, "assign", caller.actor, assignee=annotator)
        found.assignee = annotator
    return found


async def unassign(deps: Deps, caller: Principal, task_id: str, reason: str | None) -> Task:
    async with deps.db.transaction() as session:
        found = await _task(session, caller, task_id, lock=True)
        previous = found.assignee
        await _move(session, found, "unassign", caller.actor, previous_assignee=previous, reason=reason)
        found.assignee = None
    return found


async def start(deps: Deps, caller: Principal, task_id: str) -> Task:
    async with deps.db.transaction() as session:
        found = await _task(session, caller, task_id, lock=True)
        _by_assignee(found, caller, "start")
        await _move(session, found, "start", caller.actor, assignee=found.assignee)
    return found


async def rework(deps: Deps, caller: Principal, task_id: str) -> Task:
    async with deps.db.transaction() as session:
        found = await _task(session, caller, task_id, lock=True)
        _by_assignee(found, caller, "rework")
        await _move(session, found, "rework", caller.actor, assignee=found.assignee)
    return found


async def skip(deps: Deps, caller: Principal, task_id: str, reason: str | None) -> Task:
    async with deps.db.transaction() as session:
        found = await _task(session, caller, task_id, lock=True)
        _by_assignee(found, caller, "skip")
        await _move(session, found, "skip", caller.actor, assignee=found.assignee, reason=reason)
    return found


async def cancel(deps: Deps, caller: Principal, task_id: str, reason: str | None) -> Task:
    async with deps.db.transaction() as session:
        found = await _task(session, caller, task_id, lock=True)
        await _move(session, found, "cancel", caller.actor, reason=reason)
    return found


async def submit(
    deps: Deps, caller: Principal, task_id: str, label: str, lead_time_s: float | None
) -> tuple[Task, Annotation]:
    """The assignee's label (one of the template's, else 422) for review: in_progress -> submitted."""
    async with deps.db.transaction() as session:
        found = await _task(session, caller, task_id, lock=True)
        _by_assignee(found, caller, "submit")  # an illegal move is a 409 before the label is judged
        owner = await _project(session, caller, found.project_id)
        tool = await _template(session, caller, owner.template_id)
        try:
            domain.check_label(tool.labels, label)
        except domain.UnknownLabel as error:
            raise Unprocessable(str(error)) from None
        annotation = Annotation(
            id=uuid7(),
            tenant=caller.tenant_id,
            task_id=found.id,
            label=label,
            annotator=found.assignee or caller.actor,
            lead_time_s=lead_time_s,
        )
        session.add(annotation)
        await _move(
            session,
            found,
            "submit",
            caller.actor,
            assignee=annotation.annotator,
            annotation_id=annotation.id,
            lead_time_s=lead_time_s,
        )
        found.annotation_id = annotation.id
    return found, annotation


async def _review(
    deps: Deps, caller: Principal, task_id: str, name: str, reviewer: str | None, reason: str | None = None
) -> Task:
    who = _reviewer(reviewer, caller)
    async with deps.db.transaction() as session:
        found = await _task(session, caller, task_id, lock=True)
        TASK.transition(found.state, name)
        annotation = await session.get(Annotation, found.annotation_id or "")
        if annotation is None:  # cannot happen for a submitted task; never review nothing
            raise Conflict(f"task {task_id!r} has no annotation to review")
        if annotation.annotator == who:
            raise Forbidden(f"{who} annotated task {task_id!r} and may not review it")
        annotation.review = "accepted" if name == "accept" else "rejected"
        annotation.reviewer, annotation.reason, annotation.reviewed_at = who, reason, _now()
        session.add(annotation)
        extra: dict[str, Any] = {"reviewer": who, "annotation_id": annotation.id}
        if reason is not None:
            extra["reason"] = reason
        await _move(session, found, name, caller.actor, **extra)
    return found


async def accept(deps: Deps, caller: Principal, task_id: str, reviewer: str | None) -> Task:
    return await _review(deps, caller, task_id, "accept", reviewer)


async def reject(deps: Deps, caller: Principal, task_id: str, reviewer: str | None, reason: str) -> Task:
    return await _review(deps, caller, task_id, "reject", reviewer, reason)


# --- exports ----------------------------------------------------------------------------------------


async def create_export(
    deps: Deps, caller: Principal, project_id: str, body: ExportCreate
) -> tuple[Export, bool]:
    """Record an export (once per `request_id`) and start its workflow; returns it and whether it is new.
    Repeating a request whose export is still pending makes sure its workflow runs."""
    request_id = body.request_id or uuid7()
    async with deps.db.transaction() as session:
        await _project(session, caller, project_id, lock=True)
        query = select(Export).where(
            Export.tenant == caller.tenant_id,
            Export.project_id == project_id,
            Export.request_id == request_id,
        )
        existing = (await session.exec(query)).first()
        if existing is not None:
            if (existing.format, existing.label_field) != (body.format.value, body.label_field):
                raise Conflict(f"request {request_id!r} was already used for a different export")
            created, found = False, existing
        else:
            accepted = await _accepted_count(session, project_id)
            if accepted == 0:
                raise Conflict(f"project {project_id!r} has no accepted annotations to export")
            found = Export(
                id=uuid7(),
                tenant=caller.tenant_id,
                project_id=project_id,
                request_id=request_id,
                format=body.format.value,
                label_field=body.label_field,
                created_by=caller.actor,
            )
            session.add(found)
            created = True
    if found.state == "pending":
        await _start_export(deps, found)
    return found, created


async def _accepted_count(session: AsyncSession, project_id: str) -> int:
    query = (
        select(func.count()).select_from(Task).where(Task.project_id == project_id, Task.state == "accepted")
    )
    return int((await session.exec(query)).one())


async def _start_export(deps: Deps, found: Export) -> None:
    request = ExportRequest(
        tenant_id=found.tenant, export_id=found.id, dataset_task_queue=deps.settings.dataset_task_queue
    )
    try:
        await deps.temporal.start_workflow(
            ExportWorkflow.run, request, id=export_workflow_id(found.id), task_queue=deps.runtime.task_queue
        )
    except WorkflowAlreadyStartedError:
        pass  # a repeated request: the export is already running


async def export(deps: Deps, caller: Principal, project_id: str, export_id: str) -> Export:
    async with deps.db.session() as session:
        await _project(session, caller, project_id)
        query = select(Export).where(
            Export.id == export_id, Export.project_id == project_id, Export.tenant == caller.tenant_id
        )
        if (found := (await session.exec(query)).first()) is None:
            raise NotFound(f"export {export_id!r} of project {project_id!r} does not exist")
        return found


async def _locked_export(session: AsyncSession, tenant: str, export_id: str) -> Export:
    query = select(Export).where(Export.id == export_id, Export.tenant == tenant).with_for_update()
    if (found := (await session.exec(query)).first()) is None:
        raise NotFound(f"export {export_id!r} does not exist")
    return found


def export_key(tenant: str, export_id: str) -> str:
    """Where an export's file is written (one key per export, so a retried write replaces it)."""
    return f"tenants/{tenant}/exports/{export_id}/{domain.EXPORT_FILE_NAME}"


async def write_export(deps: Deps, ref: ExportRef) -> ExportedFile:
    """Activity body: the accepted annotations as JSONL in the labeling bucket (pending -> running)."""
    async with deps.db.transaction() as session:
        found = await _locked_export(session, ref.tenant_id, ref.export_id)
        if found.state == "failed":
            raise Conflict(f"export {ref.export_id!r} already failed")
        if found.state == "pending":
            found.state = domain.export_move(found.state, "start")
            session.add(found)
    async with deps.db.session() as session:
        owner = await _project(session, Principal.of_service("labeling", ref.tenant_id), found.project_id)
        query = (
            select(Task, Annotation)
            .join(Annotation, col(Annotation.id) == col(Task.annotation_id))
            .where(Task.project_id == owner.id, Task.state == "accepted")
            .order_by(col(Task.position))
        )
        rows: Sequence[tuple[Task, Annotation]] = (await session.exec(query)).all()
    records = [domain.labeled_record(t.record, found.label_field, a.label) for t, a in rows]
    key = export_key(ref.tenant_id, ref.export_id)
    await deps.store.put(key, await asyncio.to_thread(domain.jsonl, records))
    async with deps.db.transaction() as session:
        found = await _locked_export(session, ref.tenant_id, ref.export_id)
        found.record_count, found.bucket, found.object_key = len(records), deps.store.bucket, key
        session.add(found)
    return ExportedFile(
        tenant_id=ref.tenant_id,
        export_id=ref.export_id,
        project_id=owner.id,
        dataset_id=owner.dataset_id,
        source_version_id=owner.dataset_version_id,
        bucket=deps.store.bucket,
        object_key=key,
        file_name=domain.EXPORT_FILE_NAME,
        record_count=len(records),
        label_field=found.label_field,
        actor=found.created_by,
    )


async def complete_export(deps: Deps, done: ExportCompleted) -> ExportStatus:
    """Activity body: the export became dataset version `done.dataset_version_id` (idempotent)."""
    async with deps.db.transaction() as session:
        found = await _locked_export(session, done.tenant_id, done.export_id)
        if found.state not in domain.EXPORT_TERMINAL:
            found.state = domain.export_move(found.state, "succeed")
            found.dataset_version_id = done.dataset_version_id
            found.dataset_version_number = done.dataset_version_number
            found.finished_at = _now()
            session.add(found)
    return _status(found)


def _status(found: Export) -> ExportStatus:
    return ExportStatus.model_validate(
        {"export_id": found.id, "state": found.state, "dataset_version_id": found.dataset_version_id}
    )


async def fail_export(deps: Deps, failed: ExportFailed) -> ExportStatus:
    """Activity body: the export could not complete (idempotent; an ended export stays as it is)."""
    async with deps.db.transaction() as session:
        found = await _locked_export(session, failed.tenant_id, failed.export_id)
        if found.state not in domain.EXPORT_TERMINAL:
            found.state = domain.export_move(found.state, "fail")
            found.error = failed.error
            found.finished_at = _now()
            session.add(found)
    return _status(found)
