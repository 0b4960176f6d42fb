"""A toy aggregate built only from the kit, as a real service would be: a counter that can be incremented
until it is closed. Producer and consumer share one test database (they would not in a real service).

- `increment` / `close`: one transaction each, the change and its event through the outbox;
- the consumer `toy-projection` writes one effect row per event through the inbox;
- tests may add a consumer that starts the Temporal workflow in `workflows.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter
from forge_contracts.envelope import EventEnvelope
from forge_contracts.state_machines import StateMachine, Transition
from forge_kit import outbox
from forge_kit.auth import Principal, allow
from forge_kit.errors import NotFound
from forge_kit.policy import Action
from forge_kit.runtime import Runtime, ServiceRuntime
from opentelemetry import trace
from pydantic import BaseModel, Field
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.kit.toy.tables import Counter, Effect

MIGRATIONS = Path(__file__).parent / "migrations"
PROJECTION = "toy-projection"


def counter_machine(service: str) -> StateMachine:
    def t(name: str, sources: set[str], target: str, event: str) -> Transition:
        return Transition(
            name=name,
            sources=frozenset(sources),
            target=target,
            event_type=f"forge.{service}.counter.{event}.v1",
        )

    return StateMachine(
        name="toy_counter",
        service=service,
        entity="counter",
        initial="open",
        states=frozenset({"open", "closed"}),
        terminal=frozenset({"closed"}),
        transitions={
            "increment": t("increment", {"open"}, "open", "incremented"),
            "close": t("close", {"open"}, "closed", "closed"),
        },
        created_event_type=f"forge.{service}.counter.opened.v1",
    )


class IncrementBody(BaseModel):
    by: int = Field(ge=1, le=1000, description="how much to add")


class CounterView(BaseModel):
    id: str
    state: str
    value: int
    sequence: int


async def apply(
    runtime: ServiceRuntime, counter_id: str, tenant: str, transition: str, by: int = 0
) -> Counter:
    """One use case: lock the aggregate, check the transition, change it, add its event."""
    machine = counter_machine(runtime.settings.service)
    async with runtime.db.transaction() as session:
        counter = await session.get(Counter, counter_id, with_for_update=True)
        if counter is None:
            if transition != "increment":
                raise NotFound(f"counter {counter_id!r} does not exist")
            counter = Counter(id=counter_id, tenant=tenant)
        step = machine.transition(counter.state, transition)
        counter.state = step.target
        counter.value += by
        counter.sequence += 1
        session.add(counter)
        await outbox.publish(
            session,
            EventEnvelope.for_service(
                runtime.settings.service,
                step.event_type,
                subject=counter.id,
                tenant=tenant,
                sequence=counter.sequence,
                data={"counter_id": counter.id, "by": by, "value": counter.value},
            ),
        )
    return counter


Writer = Annotated[Principal, allow(Action.DATASET_WRITE)]
Reader = Annotated[Principal, allow(Action.DATASET_READ)]
router = APIRouter(prefix="/counters")


@router.post("/{counter_id}/increments")
async def increment(counter_id: str, body: IncrementBody, caller: Writer, svc: Runtime) -> CounterView:
    counter = await apply(svc, counter_id, caller.tenant_id, "increment", body.by)
    return CounterView.model_validate(counter, from_attributes=True)


@router.post("/{counter_id}/close")
async def close(counter_id: str, caller: Writer, svc: Runtime) -> CounterView:
    counter = await apply(svc, counter_id, caller.tenant_id, "close")
    return CounterView.model_validate(counter, from_attributes=True)


@router.get("/{counter_id}")
async def get(counter_id: str, _: Reader, svc: Runtime) -> CounterView:
    async with svc.db.session() as session:
        counter = await session.get(Counter, counter_id)
    if counter is None:
        raise NotFound(f"counter {counter_id!r} does not exist")
    return CounterView.model_validate(counter, from_attributes=True)


def _trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


async def project(event: EventEnvelope, session: AsyncSession) -> None:
    """The consumer's effect: one row per event. A counter named `poison*` always fails."""
    if event.subject.startswith("poison"):
        raise ValueError(f"cannot project {event.subject}")
    session.add(
        Effect(
            event_id=event.id,
            counter_id=event.subject,
            sequence=event.sequence,
            value=int(event.data["value"]),
            trace_id=_trace_id(),
        )
    )


async def effects(session: AsyncSession) -> list[Effect]:
    return list((await session.exec(select(Effect).order_by(Effect.id))).all())  # type: ignore[arg-type]
