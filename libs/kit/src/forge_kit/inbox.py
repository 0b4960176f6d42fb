"""Idempotent consumers: FastStream subscribers whose effect and inbox row commit together.

    subscribe(broker, db, topics=["forge.training.events"], consumer="registry.training-events",
              handler=on_training_event)

Messages are consumed in batches (up to `max_records`). A batch's handlers run inside one database
transaction that also inserts `(consumer, event id)` into the inbox for every event; an event whose row
exists already (a redelivery) is skipped, so it has no second effect. The Kafka offsets are committed
only after that transaction commits (manual acknowledgement), so a crash between the two means a
redelivery, never a loss: at-least-once delivery, exactly-once effect. If a handler fails, the batch is
rolled back and its events are handled one by one, each in its own transaction, so one bad event does
not hold back the others.

Failures: infrastructure errors (database or broker unreachable) are retried until they pass, with
capped backoff, without committing the offset. Any other handler error is retried `max_attempts` times
with exponential backoff; then the message goes to the dead-letter topic `<consumer>.dlq` with the error
in its headers, and the offset moves on. A message that is not a Forge CloudEvent goes straight there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
import sqlalchemy.exc
from aiokafka import TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from forge_contracts.envelope import EventEnvelope, InvalidEvent, from_kafka
from opentelemetry import trace
from prometheus_client import Counter
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_kit.db import Database
from forge_kit.observability import context_from_traceparent, logger, trace_id_of, tracer

Handler = Callable[[EventEnvelope, AsyncSession], Awaitable[None]]

HANDLED = Counter("forge_events_handled_total", "Events handled, by outcome", ["consumer", "outcome"])

_CLAIM_MANY = text(
    "INSERT INTO inbox (consumer, event_id, event_type, subject, sequence) "
    "SELECT :consumer, * FROM unnest(CAST(:ids AS text[]), CAST(:types AS text[]), "
    "CAST(:subjects AS text[]), CAST(:sequences AS bigint[])) "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)
_CLAIM = text(
    "INSERT INTO inbox (consumer, event_id, event_type, subject, sequence) "
    "VALUES (:consumer, :event_id, :event_type, :subject, :sequence) "
    "ON CONFLICT DO NOTHING RETURNING 1"
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing handler is retried before its message is dead-lettered."""

    max_attempts: int = 5
    first_backoff_s: float = 0.2
    max_backoff_s: float = 5.0

    def backoff_s(self, attempt: int) -> float:
        return float(min(self.first_backoff_s * 2 ** (attempt - 1), self.max_backoff_s))


def dead_letter_topic(consumer: str) -> str:
    """Where a consumer's undeliverable messages go."""
    return f"{consumer}.dlq"


def is_transient(error: BaseException) -> bool:
    """Errors that say "infrastructure is unreachable", not "this event is bad"."""
    if isinstance(error, OSError | asyncpg.InterfaceError | asyncpg.CannotConnectNowError | TimeoutError):
        return True
    if isinstance(error, asyncpg.PostgresConnectionError | asyncpg.AdminShutdownError):
        return True
    if isinstance(error, sqlalchemy.exc.DBAPIError):
        return bool(error.connection_invalidated) or is_transient(error.orig) if error.orig else True
    if isinstance(error, sqlalchemy.exc.InterfaceError | sqlalchemy.exc.OperationalError):
        return True
    cause = error.__cause__
    return cause is not None and cause is not error and is_transient(cause)


class InboxConsumer:
    """Runs one handler for one consumer name, exactly once per event."""

    def __init__(
        self, broker: KafkaBroker, db: Database, *, consumer: str, handler: Handler, retry: RetryPolicy
    ) -> None:
        self.broker = broker
        self.db = db
        self.consumer = consumer
        self.handler = handler
        self.retry = retry
        self._log = logger(component="inbox", consumer=consumer)
        self._last_commit: asyncio.Task[None] | None = None

    async def on_batch(self, message: KafkaMessage) -> None:
        """FastStream entry point: one call per batch of Kafka records."""
        try:
            await self._on_batch(message)
        except BaseException:
            # Not handled (cancelled, or the dead-letter topic unreachable): rewind to the batch's first
            # records so a later acknowledgement cannot commit past them.
            await message.nack()
            raise
        self._commit_offsets(message)

    def _commit_offsets(self, message: KafkaMessage) -> None:
        """Commit the batch's offsets in the background, after the previous batch's commit.

        The offsets are explicit (each partition's last record + 1), so a commit can only lag behind what
        has been processed, never run ahead of it; fetching the next batch need not wait for the broker.
        A commit lost to a crash or a rebalance means a redelivery, which the inbox absorbs.
        """
        raw = message.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        previous = self._last_commit
        consumer = message.consumer

        async def commit() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            try:
                await consumer.commit(offsets)  # type: ignore[call-arg]
            except Exception as error:
                self._log.warning("offsets.commit_failed", error=repr(error))

        self._last_commit = asyncio.create_task(commit())

    async def drain(self) -> None:
        """Wait for the last offset commit (on shutdown)."""
        if self._last_commit is not None:
            await asyncio.gather(self._last_commit, return_exceptions=True)

    async def _on_batch(self, message: KafkaMessage) -> None:
        raw = message.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        events: list[tuple[EventEnvelope, Any]] = []
        for record in records:
            try:
                events.append((from_kafka(record.headers or [], record.value), record))
            except InvalidEvent as error:
                await self._dead_letter(record, f"invalid event: {error}")
        if not events:
            return
        while True:
            try:
                outcomes = await self._handle_batch([event for event, _ in events])
                break
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if is_transient(error):
                    await self._wait_for_infrastructure(error)
                    continue
                # A handler failed: handle each event on its own, with retries and dead-lettering.
                self._log.warning("batch.falling_back_to_single_events", error=repr(error), size=len(events))
                for event, record in events:
                    with self._span(event, record.topic):
                        await self._handle(event, record)
                return
        for event, _ in events:
            self._record(event, outcomes[event.id])

    async def _handle_batch(self, events: list[EventEnvelope]) -> dict[str, str]:
        outcomes: dict[str, str] = {}
        async with self.db.transaction() as session:
            fresh = await self._claim(session, events)
            for event in events:
                if event.id not in fresh or event.id in outcomes:
                    outcomes.setdefault(event.id, "duplicate")
                    continue
                with self._span(event, self.consumer):
                    await self.handler(event, session)
                outcomes[event.id] = "handled"
        return outcomes

    async def _claim(self, session: AsyncSession, events: list[EventEnvelope]) -> set[str]:
        result = await session.exec(  # type: ignore[call-overload]
            _CLAIM_MANY,
            params={
                "consumer": self.consumer,
                "ids": [e.id for e in events],
                "types": [e.type for e in events],
                "subjects": [e.subject for e in events],
                "sequences": [e.sequence for e in events],
            },
        )
        return {row[0] for row in result.all()}

    def _span(self, event: EventEnvelope, destination: str) -> Any:
        return tracer().start_as_current_span(
            f"consume {event.type}",
            context=context_from_traceparent(event.traceparent),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": destination,
                "messaging.consumer.group.name": self.consumer,
                "cloudevents.event_id": event.id,
                "cloudevents.event_type": event.type,
                "cloudevents.event_subject": event.subject,
            },
        )

    def _record(self, event: EventEnvelope, outcome: str) -> None:
        HANDLED.labels(self.consumer, outcome).inc()
        self._log.info(
            "event.handled",
            outcome=outcome,
            event_id=event.id,
            event_type=event.type,
            subject=event.subject,
            sequence=event.sequence,
            trace_id=trace_id_of(event.traceparent),
        )

    async def _wait_for_infrastructure(self, error: BaseException) -> None:
        delay = self.retry.max_backoff_s
        self._log.warning("event.infrastructure_unavailable", error=repr(error), retry_in_s=delay)
        await asyncio.sleep(delay)

    async def _handle(self, event: EventEnvelope, record: Any) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                self._record(event, await self._handle_once(event))
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if is_transient(error):
                    await self._wait_for_infrastructure(error)
                    attempt -= 1  # infrastructure errors do not use up the event's attempts
                    continue
                if attempt >= self.retry.max_attempts:
                    self._log.error(
                        "event.dead_lettered", event_id=event.id, error=repr(error), attempts=attempt
                    )
                    HANDLED.labels(self.consumer, "dead_lettered").inc()
                    await self._dead_letter(record, f"{type(error).__name__}: {error}")
                    return
                self._log.warning("event.retrying", event_id=event.id, error=repr(error), attempt=attempt)
                await asyncio.sleep(self.retry.backoff_s(attempt))

    async def _handle_once(self, event: EventEnvelope) -> str:
        async with self.db.transaction() as session:
            claimed = await session.exec(  # type: ignore[call-overload]
                _CLAIM,
                params={
                    "consumer": self.consumer,
                    "event_id": event.id,
                    "event_type": event.type,
                    "subject": event.subject,
                    "sequence": event.sequence,
                },
            )
            if claimed.first() is None:
                return "duplicate"
            await self.handler(event, session)
        return "handled"

    async def _dead_letter(self, record: Any, reason: str) -> None:
        headers = {name: value.decode(errors="replace") for name, value in (record.headers or [])}
        headers.update(
            {
                "forge-dlq-reason": reason[:2000],
                "forge-dlq-topic": record.topic,
                "forge-dlq-partition": str(record.partition),
                "forge-dlq-offset": str(record.offset),
                "forge-dlq-consumer": self.consumer,
            }
        )
        await self.broker.publish(
            record.value or b"", topic=dead_letter_topic(self.consumer), key=record.key, headers=headers
        )


async def _raw_bytes(message: Any) -> Any:
    return message.body


def subscribe(
    broker: KafkaBroker,
    db: Database,
    *,
    topics: Sequence[str],
    consumer: str,
    handler: Handler,
    retry: RetryPolicy | None = None,
    max_records: int = 500,
    start: Literal["earliest", "latest"] = "earliest",
) -> InboxConsumer:
    """Register an idempotent handler for `topics` under consumer group `consumer`; a new group starts
    at the `start` of each partition."""
    inbox = InboxConsumer(broker, db, consumer=consumer, handler=handler, retry=retry or RetryPolicy())
    broker.subscriber(
        *topics,
        group_id=consumer,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset=start,
        batch=True,
        max_records=max_records,
        # FastStream sleeps this long again after an empty poll: keep it short, it bounds added latency.
        batch_timeout_ms=10,
        decoder=_raw_bytes,  # the inbox parses CloudEvents itself; skip FastStream's JSON decoding
    )(inbox.on_batch)
    return inbox
