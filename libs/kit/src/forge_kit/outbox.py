"""Transactional outbox, producer side: an event is written in the same transaction as its change.

    async with db.transaction() as session:
        job.state = machine.transition(job.state, "start").target
        session.add(job)
        await outbox.publish(session, event)

If the transaction commits, the event will be published (by the relay, at least once); if it rolls
back, it never existed. The current trace context is stamped on the event when it has none.

Order per key: the insert first takes a transaction-scoped advisory lock on the event's key, so two
transactions writing events of the same aggregate are serialised and, for each key, outbox ids follow
commit order. The relay publishes a key's rows in id order, so consumers see them in commit order, with
no global "wait for every older transaction" horizon that one slow transaction anywhere would stall.
"""

from __future__ import annotations

import json

from forge_contracts.envelope import EventEnvelope, to_kafka
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_kit import audit
from forge_kit.observability import current_traceparent

_INSERT = text(
    "WITH key_lock AS (SELECT pg_advisory_xact_lock(:lock_space, hashtext(:key))) "
    "INSERT INTO outbox (event_id, event_type, topic, key, headers, value) "
    "SELECT :event_id, :event_type, :topic, :key, CAST(:headers AS jsonb), :value FROM key_lock"
)
KEY_LOCK_SPACE = 4_137_002  # first key of the (int, int) advisory locks taken per event key


async def publish(session: AsyncSession, event: EventEnvelope) -> EventEnvelope:
    """Add `event` to the outbox inside the caller's transaction, with its audit entry (forge_kit.audit);
    returns the event as stored."""
    if event.traceparent is None and (traceparent := current_traceparent()):
        event = event.model_copy(update={"traceparent": traceparent})
    await _insert(session, event)
    if (entry := audit.change_entry(event)) is not None:
        await _insert(session, entry)
    return event


async def _insert(session: AsyncSession, event: EventEnvelope) -> None:
    record = to_kafka(event)
    headers = [[name, value.decode()] for name, value in record.headers]
    await session.exec(  # type: ignore[call-overload]
        _INSERT,
        params={
            "lock_space": KEY_LOCK_SPACE,
            "event_id": event.id,
            "event_type": event.type,
            "topic": record.topic,
            "key": record.key.decode(),
            "headers": json.dumps(headers),
            "value": record.value,
        },
    )
