"""The dataset service's state-machine moves: each changes the row and puts its one event, with the
aggregate's next sequence, into the outbox of the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from forge_contracts.events import EVENT_TYPES
from forge_contracts.state_machines import MACHINES, StateMachine
from forge_kit import outbox
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_dataset.tables import DatasetTask, DatasetVersion

VERSION: StateMachine = MACHINES["dataset_version"]
TASK: StateMachine = MACHINES["dataset_task"]


def now() -> datetime:
    return datetime.now(UTC)


async def emit(
    session: AsyncSession, entity: DatasetVersion | DatasetTask, event_type: str, **data: Any
) -> None:
    """The aggregate's next event, with its sequence, into the outbox."""
    entity.sequence += 1
    payload = EVENT_TYPES[event_type].model_validate(data)
    await outbox.publish(session, payload.to_envelope(sequence=entity.sequence))


async def move_version(
    session: AsyncSession, version: DatasetVersion, name: str, actor: str | None, **extra: Any
) -> None:
    step = VERSION.transition(version.state, name)
    from_state, version.state = version.state, step.target
    session.add(version)
    await emit(
        session,
        version,
        step.event_type,
        tenant_id=version.tenant,
        occurred_at=now(),
        actor=actor,
        version_id=version.id,
        dataset_id=version.dataset_id,
        from_state=from_state,
        **extra,
    )


async def move_task(
    session: AsyncSession, task: DatasetTask, name: str, actor: str | None, **extra: Any
) -> None:
    step = TASK.transition(task.state, name)
    from_state, task.state = task.state, step.target
    task.updated_at = now()
    session.add(task)
    await emit(
        session,
        task,
        step.event_type,
        tenant_id=task.tenant,
        occurred_at=now(),
        actor=actor,
        task_id=task.id,
        dataset_id=task.dataset_id,
        kind=task.kind,
        from_state=from_state,
        **extra,
    )
