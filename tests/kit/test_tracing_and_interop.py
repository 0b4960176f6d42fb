"""One trace from an HTTP request through the outbox, Kafka and a consumer into a Temporal workflow and
its activity; log lines carry the trace id; dead letters; and a stock CloudEvents SDK reads our events."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event
from forge_contracts.envelope import EventEnvelope, topic_for
from forge_kit import observability
from forge_kit.inbox import RetryPolicy, dead_letter_topic
from forge_kit.runtime import ServiceRuntime
from forge_kit.stack_env import StackSettings
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.exceptions import WorkflowAlreadyStartedError

from tests.identity import as_user
from tests.kit.conftest import Toy, running_toy
from tests.kit.toy.app import PROJECTION, effects
from tests.kit.toy.workflows import ToyWorkflow, record_trace
from tests.waiting import eventually

pytestmark = pytest.mark.usefixtures("directory")  # callers resolved through the test directory
TENANT = as_user("alice", "acme")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture(scope="session")
def spans() -> Iterator[InMemorySpanExporter]:
    observability.configure("forge-tests")
    exporter = InMemorySpanExporter()
    observability.add_span_exporter(exporter)
    yield exporter


async def test_one_trace_spans_http_outbox_kafka_consumer_and_temporal(
    stack_settings: StackSettings,
    database: str,
    spans: InMemorySpanExporter,
    capsys: pytest.CaptureFixture[str],
) -> None:
    started: list[str] = []

    def setup(runtime: ServiceRuntime) -> None:
        async def start_workflow(event: EventEnvelope, session: AsyncSession) -> None:
            assert runtime.temporal is not None
            workflow_id = f"toy:{event.id}"  # deterministic: a redelivered event cannot start a second one
            try:
                await runtime.temporal.start_workflow(
                    ToyWorkflow.run, event.subject, id=workflow_id, task_queue=runtime.task_queue
                )
            except WorkflowAlreadyStartedError:
                pass
            started.append(workflow_id)

        runtime.subscribe(
            topics=[topic_for(runtime.settings.service)],
            consumer=f"{runtime.settings.service}.chain",
            handler=start_workflow,
        )
        runtime.register(workflows=[ToyWorkflow], activities=[record_trace])

    async with running_toy(stack_settings, database, setup=setup) as toy:
        response = await toy.http.post(
            "/counters/t1/increments", json={"by": 1}, headers={**TENANT, "traceparent": TRACEPARENT}
        )
        assert response.status_code == 200
        assert response.headers["traceparent"].split("-")[1] == TRACE_ID

        async def workflow_started() -> list[str]:
            return started

        (workflow_id,) = await eventually(workflow_started, timeout_s=60, what="the workflow started")
        assert toy.runtime.temporal is not None
        activity_trace = await toy.runtime.temporal.get_workflow_handle(workflow_id).result()
        async with toy.runtime.db.session() as session:
            (effect,) = await effects(session)

    assert activity_trace == TRACE_ID  # Temporal activity
    assert effect.trace_id == TRACE_ID  # Kafka consumer
    names = {
        span.name for span in spans.get_finished_spans() if format(span.context.trace_id, "032x") == TRACE_ID
    }
    assert "POST /counters/{counter_id}/increments" in names  # the route, never the raw path
    assert any(name.startswith("consume forge.") for name in names)
    assert any("ToyWorkflow" in name for name in names), names
    log_lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    handled = [line for line in log_lines if line.get("event") == "event.handled"]
    assert handled and all(line["trace_id"] == TRACE_ID for line in handled)


async def test_a_handler_that_keeps_failing_dead_letters_the_event_and_later_events_still_flow(
    stack_settings: StackSettings, database: str
) -> None:
    async with running_toy(stack_settings, database) as toy:
        for consumer in toy.runtime.consumers:
            consumer.retry = RetryPolicy(max_attempts=3, first_backoff_s=0.05)
        dlq = dead_letter_topic(f"{toy.service}.{PROJECTION}")
        await toy.http.post("/counters/poison1/increments", json={"by": 1}, headers=TENANT)
        await toy.http.post("/counters/healthy/increments", json={"by": 1}, headers=TENANT)

        async def healthy_effect() -> list:
            async with toy.runtime.db.session() as session:
                return [e for e in await effects(session) if e.counter_id == "healthy"]

        await eventually(healthy_effect, timeout_s=60, what="the event after the poison one")
        (dead,) = await _read(stack_settings, dlq, 1)
    headers = {name: value.decode() for name, value in dead.headers}
    assert headers["forge-dlq-reason"] == "ValueError: cannot project poison1"
    assert headers["ce_subject"] == "poison1"
    assert headers["forge-dlq-topic"] == toy.topic


async def test_a_message_that_is_not_a_cloudevent_goes_to_the_dead_letter_topic(
    stack_settings: StackSettings, database: str
) -> None:
    async with running_toy(stack_settings, database) as toy:
        producer = AIOKafkaProducer(bootstrap_servers=stack_settings.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(toy.topic, b'{"hello": "world"}', key=b"x")
        finally:
            await producer.stop()
        (dead,) = await _read(stack_settings, dead_letter_topic(f"{toy.service}.{PROJECTION}"), 1)
    assert dict(dead.headers)["forge-dlq-reason"].decode().startswith("invalid event: not a CloudEvent")


async def test_a_stock_cloudevents_sdk_reads_the_events_we_publish(toy: Toy) -> None:
    await toy.http.post("/counters/sdk/increments", json={"by": 4}, headers=TENANT)
    (record,) = await _read_settings(toy, toy.topic, 1)
    event = from_binary_event(KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value))
    assert event.get_type() == f"forge.{toy.service}.counter.incremented.v1"
    assert event.get_source() == f"/forge/{toy.service}"
    assert event.get_subject() == "sdk"
    assert event.get_extension("tenantid") == "acme"
    assert str(event.get_extension("sequence")) == "1"
    assert event.get_data() == {"by": 4, "counter_id": "sdk", "value": 4}
    assert record.key == b"sdk"


async def _read_settings(toy: Toy, topic: str, count: int) -> list:
    return await _read_bootstrap(toy.runtime.settings.kafka_bootstrap, topic, count)


async def _read(stack_settings: StackSettings, topic: str, count: int) -> list:
    return await _read_bootstrap(stack_settings.kafka_bootstrap, topic, count)


async def _read_bootstrap(bootstrap: str, topic: str, count: int) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list = []
    try:

        async def more() -> list:
            batch = await consumer.getmany(timeout_ms=500)
            for items in batch.values():
                records.extend(items)
            return records if len(records) >= count else []

        await eventually(more, timeout_s=60, what=f"{count} records on {topic}")
    finally:
        await consumer.stop()
    return records
