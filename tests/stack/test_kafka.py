"""Kafka: a real KRaft broker with idempotent producers, consumer groups, commits and transactions."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from forge_kit.stack_env import StackSettings


async def _consume(settings: StackSettings, topic: str, count: int, **options: object) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest", **options
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < count:
            batch = await consumer.getmany(timeout_ms=10_000)
            if not batch:
                break
            for records in batch.values():
                values.extend(r.value for r in records if r.value is not None)
        return values
    finally:
        await consumer.stop()


async def test_idempotent_producer_and_consumer_group_commit(
    stack_settings: StackSettings, kafka_topic: str
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=stack_settings.kafka_bootstrap, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        for i in range(20):
            await producer.send_and_wait(kafka_topic, f"m{i}".encode(), key=f"k{i % 4}".encode())
    finally:
        await producer.stop()

    group = f"group-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        kafka_topic,
        bootstrap_servers=stack_settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen: list[bytes] = []
    try:
        while len(seen) < 20:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, "no records arrived from the broker"
            for records in batch.values():
                seen.extend(r.value for r in records if r.value is not None)
        await consumer.commit()
        partitions = consumer.assignment()
        committed = {tp: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()

    assert sorted(seen) == sorted(f"m{i}".encode() for i in range(20))
    assert sum(offset or 0 for offset in committed.values()) == 20
    assert {tp.partition for tp in committed} == {0, 1, 2}
    assert all(isinstance(tp, TopicPartition) for tp in committed)


async def test_transactions_hide_aborted_records_from_read_committed_consumers(
    stack_settings: StackSettings, kafka_topic: str
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=stack_settings.kafka_bootstrap, transactional_id=f"tx-{uuid.uuid4().hex[:8]}"
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(kafka_topic, b"committed", key=b"k")
        await producer.begin_transaction()
        await producer.send(kafka_topic, b"aborted", key=b"k")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(kafka_topic, b"committed-too", key=b"k")
    finally:
        await producer.stop()

    values = await _consume(stack_settings, kafka_topic, 2, isolation_level="read_committed")
    assert values == [b"committed", b"committed-too"]
