"""The outbox and inbox end to end: a change and its event commit together, reach Kafka once, and have
exactly one effect at the consumer."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from forge_contracts.envelope import EventEnvelope, to_kafka
from forge_kit import outbox
from sqlalchemy import text

from tests.identity import as_user
from tests.kit.conftest import Toy
from tests.kit.toy.app import effects
from tests.waiting import eventually

TENANT = as_user("alice", "acme")


async def _effects(toy: Toy) -> list:
    async with toy.runtime.db.session() as session:
        return await effects(session)


async def test_a_committed_change_reaches_the_consumer_exactly_once(toy: Toy) -> None:
    response = await toy.http.post("/counters/c1/increments", json={"by": 3}, headers=TENANT)
    assert response.status_code == 200, response.text
    assert response.json() == {"id": "c1", "state": "open", "value": 3, "sequence": 1}

    found = await eventually(lambda: _effects(toy), what="the projection's effect")
    assert [(e.counter_id, e.sequence, e.value) for e in found] == [("c1", 1, 3)]


async def test_a_rolled_back_change_publishes_nothing(toy: Toy) -> None:
    event = EventEnvelope.for_service(
        toy.service,
        f"forge.{toy.service}.counter.incremented.v1",
        subject="ghost",
        tenant="acme",
        sequence=1,
        data={"value": 1},
    )
    try:
        async with toy.runtime.db.transaction() as session:
            await outbox.publish(session, event)
            raise RuntimeError("the use case failed after writing its event")
    except RuntimeError:
        pass
    await toy.http.post("/counters/real/increments", json={"by": 1}, headers=TENANT)
    found = await eventually(lambda: _effects(toy), what="the later event's effect")
    assert [e.counter_id for e in found] == ["real"]
    async with toy.runtime.db.session() as session:
        rows = (
            await session.exec(  # type: ignore[call-overload]
                text("SELECT count(*) FROM outbox WHERE topic = :topic").bindparams(topic=toy.topic)
            )
        ).one()
    assert rows[0] == 1  # the later event only: the rolled-back one left no row (audit rows not counted)


async def test_a_redelivered_event_has_no_second_effect(toy: Toy) -> None:
    event = EventEnvelope.for_service(
        toy.service,
        f"forge.{toy.service}.counter.incremented.v1",
        subject="twice",
        tenant="acme",
        sequence=1,
        data={"value": 7},
    )
    record = to_kafka(event)
    producer = AIOKafkaProducer(bootstrap_servers=toy.runtime.settings.kafka_bootstrap)
    await producer.start()
    try:
        for _ in range(3):  # the same message three times, as redelivery after a crash would bring it
            await producer.send_and_wait(record.topic, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()
    await toy.http.post("/counters/after/increments", json={"by": 1}, headers=TENANT)

    async def both_seen() -> list:
        found = await _effects(toy)
        return found if {"twice", "after"} <= {e.counter_id for e in found} else []

    found = await eventually(both_seen, what="effects of the redelivered and the marker event")
    assert [e.counter_id for e in found if e.counter_id == "twice"] == ["twice"]
