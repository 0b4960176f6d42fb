"""The kit under faults, on the real stack: a relay killed at the worst moment, Kafka and PostgreSQL
restarted mid-stream, and a large volume over many keys. Each checks what a user relies on: every event
has exactly one effect, in order per aggregate."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import defaultdict
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from forge_cli.stack import Stack
from forge_contracts.envelope import EventEnvelope
from forge_kit import outbox
from forge_kit.relay import OutboxRelay
from forge_kit.stack_env import StackSettings

from tests.identity import as_user
from tests.kit.conftest import Toy, running_toy
from tests.kit.toy.app import effects
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("directory")  # callers resolved through the test directory
TENANT = as_user("alice", "acme")


async def _effects(toy: Toy) -> list:
    async with toy.runtime.db.session() as session:
        return await effects(session)


async def _count_effects(toy: Toy, expected: int) -> list:
    found = await _effects(toy)
    return found if len(found) >= expected else []


async def _messages_on_topic(toy: Toy) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=toy.runtime.settings.kafka_bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(toy.topic, p) for p in range(3)])  # toy topics: 3
        return sum(ends.values())
    finally:
        await consumer.stop()


async def _unsent(toy: Toy) -> int:
    """Unsent rows of the toy's own events (each also has audit entries in the outbox, not counted)."""
    conn = await asyncpg.connect(toy.runtime.db.dsn)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND topic = $1", toy.topic)
        )
    finally:
        await conn.close()


def _assert_in_order_per_key(found: list) -> None:
    per_key: dict[str, list[int]] = defaultdict(list)
    for effect in found:
        per_key[effect.counter_id].append(effect.sequence)
    for key, sequences in per_key.items():
        assert sequences == list(range(1, len(sequences) + 1)), f"{key}: {sequences}"


async def test_relay_killed_after_publish_before_marking_sent_causes_no_second_effect(
    stack_settings: StackSettings, database: str
) -> None:
    async with running_toy(stack_settings, database, run_relay=False) as toy:
        for i in range(20):
            response = await toy.http.post(f"/counters/k{i % 4}/increments", json={"by": 1}, headers=TENANT)
            assert response.status_code == 200
        command = [
            sys.executable,
            "-m",
            "tests.kit.relay_process",
            toy.runtime.db.dsn,
            toy.runtime.settings.kafka_bootstrap,
            toy.service,
        ]
        dying = await asyncio.create_subprocess_exec(*command, "--kill-after-publish", cwd=ROOT)
        assert await asyncio.wait_for(dying.wait(), 60) == -signal.SIGKILL

        assert await _messages_on_topic(toy) == 20  # published...
        assert await _unsent(toy) == 20  # ...but never marked sent

        survivor = await asyncio.create_subprocess_exec(*command, cwd=ROOT)
        try:
            await eventually(lambda: _zero(_unsent(toy)), what="the second relay marking every row sent")
            assert await _messages_on_topic(toy) == 40  # every event was delivered twice
            found = await eventually(lambda: _count_effects(toy, 20), what="20 effects")
            await asyncio.sleep(1.0)  # give any second effect the chance to appear
            found = await _effects(toy)
        finally:
            survivor.send_signal(signal.SIGTERM)
            await survivor.wait()
    assert len(found) == 20
    assert len({e.event_id for e in found}) == 20
    _assert_in_order_per_key(found)


async def _zero(value_coro) -> bool:  # type: ignore[no-untyped-def]
    return await value_coro == 0


async def test_kafka_restart_mid_stream_loses_no_event(stack: Stack, toy: Toy) -> None:
    kafka = next(s for s in stack.servers if s.name == "kafka")
    total = 120

    async def produce() -> None:
        for i in range(total):
            response = await toy.http.post(f"/counters/k{i % 6}/increments", json={"by": 1}, headers=TENANT)
            assert response.status_code == 200, response.text  # writes keep working while Kafka is down
            await asyncio.sleep(0.02)

    producing = asyncio.create_task(produce())
    await eventually(lambda: _count_effects(toy, 10), what="first effects before the restart")
    await asyncio.to_thread(kafka.stop)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(stack.up)
    await producing
    found = await eventually(lambda: _count_effects(toy, total), timeout_s=120, what=f"{total} effects")
    assert len(found) == total
    assert len({e.event_id for e in found}) == total
    _assert_in_order_per_key(found)


async def test_postgres_restart_is_survived_without_manual_action(stack: Stack, toy: Toy) -> None:
    postgres = next(s for s in stack.servers if s.name == "postgres")
    for i in range(10):
        assert (
            await toy.http.post(f"/counters/p{i % 2}/increments", json={"by": 1}, headers=TENANT)
        ).is_success
    await eventually(lambda: _count_effects(toy, 10), what="effects before the restart")

    await asyncio.to_thread(postgres.stop)
    await asyncio.to_thread(stack.up)

    async def accepted() -> bool:
        response = await toy.http.post("/counters/p0/increments", json={"by": 1}, headers=TENANT)
        return response.status_code == 200

    await eventually(accepted, timeout_s=30, what="the service accepting writes again")
    for i in range(9):
        assert (
            await toy.http.post(f"/counters/p{i % 2}/increments", json={"by": 1}, headers=TENANT)
        ).is_success
    found = await eventually(lambda: _count_effects(toy, 20), timeout_s=60, what="20 effects")
    assert len(found) == 20
    _assert_in_order_per_key(found)
    ready = await toy.http.get("/readyz")
    assert ready.status_code == 200, ready.text
    # The identity provider kept its database too: no token request fails on a dead pooled connection.
    settings = toy.runtime.settings
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(12):
            token = await http.post(
                f"{settings.oidc_issuer}/protocol/openid-connect/token",
                data={"grant_type": "client_credentials"},
                auth=(settings.client_id, settings.client_secret),
            )
            assert token.status_code == 200, token.text


async def test_ten_thousand_events_over_many_keys_keep_order_per_key_and_exact_counts(toy: Toy) -> None:
    keys, per_key = 200, 50
    for round_ in range(per_key):
        async with toy.runtime.db.transaction() as session:
            for k in range(keys):
                await outbox.publish(
                    session,
                    EventEnvelope.for_service(
                        toy.service,
                        f"forge.{toy.service}.counter.incremented.v1",
                        subject=f"key{k}",
                        tenant="acme",
                        sequence=round_ + 1,
                        data={"value": round_ + 1},
                    ),
                )
    total = keys * per_key
    found = await eventually(
        lambda: _count_effects(toy, total), timeout_s=240, interval_s=0.5, what=f"{total} effects"
    )
    assert len(found) == total
    assert len({e.event_id for e in found}) == total
    _assert_in_order_per_key(found)
    assert {e.counter_id for e in found} == {f"key{k}" for k in range(keys)}


async def test_two_relays_split_the_shards_and_one_takes_over_when_the_other_stops(
    stack_settings: StackSettings, database: str
) -> None:
    async with running_toy(stack_settings, database, run_relay=False) as toy:
        settings = toy.runtime.settings
        first = OutboxRelay(
            toy.runtime.db.dsn, settings.kafka_bootstrap, service=settings.service, max_shards=8
        )
        second = OutboxRelay(
            toy.runtime.db.dsn, settings.kafka_bootstrap, service=settings.service, max_shards=8
        )
        tasks = [asyncio.create_task(first.run()), asyncio.create_task(second.run())]
        try:
            await eventually(
                lambda: _true(len(first.shards) == 8 and len(second.shards) == 8),
                what="both relays holding 8 shards",
            )
            assert first.shards.isdisjoint(second.shards)
            for i in range(60):
                response = await toy.http.post(
                    f"/counters/s{i % 12}/increments", json={"by": 1}, headers=TENANT
                )
                assert response.status_code == 200, response.text
            await eventually(lambda: _count_effects(toy, 60), what="60 effects with two relays")

            await first.stop()
            second.max_shards = 16
            await eventually(lambda: _true(len(second.shards) == 16), what="the survivor taking every shard")
            for i in range(60):
                await toy.http.post(f"/counters/s{i % 12}/increments", json={"by": 1}, headers=TENANT)
            found = await eventually(lambda: _count_effects(toy, 120), what="120 effects after takeover")
        finally:
            await first.stop()
            await second.stop()
            await asyncio.gather(*tasks)
    assert len(found) == 120
    _assert_in_order_per_key(found)


async def _true(value: bool) -> bool:
    return value


async def test_relay_wakes_on_notify_instead_of_polling(stack_settings: StackSettings, database: str) -> None:
    async with running_toy(stack_settings, database, run_relay=False) as toy:
        settings = toy.runtime.settings
        relay = OutboxRelay(
            toy.runtime.db.dsn, settings.kafka_bootstrap, service=settings.service, idle_poll_s=120.0
        )
        task = asyncio.create_task(relay.run())
        try:
            await eventually(lambda: _true(len(relay.shards) == 16), what="relay connected")
            await asyncio.sleep(0.5)  # the relay is now idle, waiting up to 120 s unless notified
            await toy.http.post("/counters/n/increments", json={"by": 1}, headers=TENANT)
            await eventually(lambda: _count_effects(toy, 1), timeout_s=10, what="effect well before the poll")
        finally:
            await relay.stop()
            await task


async def test_relay_stop_finishes_the_batch_in_progress(
    stack_settings: StackSettings, database: str
) -> None:
    async with running_toy(stack_settings, database, run_relay=False) as toy:
        settings = toy.runtime.settings
        in_batch = asyncio.Event()
        release = asyncio.Event()

        async def hold(acked: object) -> None:
            in_batch.set()
            await release.wait()

        for i in range(5):
            await toy.http.post(f"/counters/g{i}/increments", json={"by": 1}, headers=TENANT)
        relay = OutboxRelay(
            toy.runtime.db.dsn, settings.kafka_bootstrap, service=settings.service, after_publish=hold
        )
        task = asyncio.create_task(relay.run())
        await asyncio.wait_for(in_batch.wait(), 30)
        stopping = asyncio.create_task(relay.stop())
        await asyncio.sleep(0.3)
        assert not stopping.done()  # it waits for the batch...
        release.set()
        await asyncio.wait_for(stopping, 30)
        await task
        assert await _unsent(toy) == 0  # ...which was published and marked before it returned
        assert await _messages_on_topic(toy) == 5
