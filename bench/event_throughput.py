"""End-to-end event throughput and latency of the kit, against raw aiokafka on the same broker.

Both pipelines run their two sides in two processes, as two services would: a producing side and a
consuming side, on the same broker, in the same run.

Baseline (raw): process 1 sends N messages of our events' size with an idempotent aiokafka producer
(acks=all); process 2 consumes them in a consumer group, committing offsets after each batch.
Throughput = N / (first send -> last batch committed).

Kit: N events are already committed in the outbox. Process 1 runs the relay (outbox -> Kafka); process 2
runs an inbox consumer whose effect is one row per event, committed with its inbox rows.
Throughput = N / (relay start -> last effect committed).

Latency (kit): a third process commits one event per transaction at a steady 1 000 events/s for 10 s
(8 concurrent writers); latency = the effect's commit time (clock_timestamp() in its row) minus the time
the producing transaction's commit returned, on the same machine clock. Reports p50 and p99.

Runs against the stack started by `forge stack up`, each run on a fresh database and fresh topics.
`--write` updates docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from forge_contracts.envelope import EventEnvelope, to_kafka, topic_for
from forge_kit import observability, outbox
from forge_kit.db import Database, asyncpg_dsn
from forge_kit.inbox import subscribe
from forge_kit.messaging_tables import UPGRADE
from forge_kit.relay import OutboxRelay
from forge_kit.stack_env import StackSettings, load_stack_settings
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

_MP = mp.get_context("spawn")

EFFECTS_DDL = """
CREATE TABLE bench_effects (
    event_id text PRIMARY KEY,
    committed_at double precision NOT NULL DEFAULT extract(epoch FROM clock_timestamp())
)
"""


class BenchEffect(SQLModel, table=True):
    """The consumer's effect: one row per event (committed_at filled by the database at insert)."""

    __tablename__ = "bench_effects"
    event_id: str = Field(primary_key=True)


def _event(service: str, i: int) -> EventEnvelope:
    return EventEnvelope.for_service(
        service,
        f"forge.{service}.item.recorded.v1",
        subject=f"key-{i % 256}",
        tenant="bench",
        sequence=i // 256 + 1,
        data={"index": i, "payload": "x" * 200},
    )


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()


@contextmanager
def _fresh_database(stack: StackSettings) -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(stack, f'CREATE DATABASE "{name}"'))
    dsn = stack.pg_admin_dsn(name)
    asyncio.run(_admin(stack, *UPGRADE, EFFECTS_DDL, database=name))
    try:
        yield dsn
    finally:
        asyncio.run(_admin(stack, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(stack: StackSettings, *statements: str, database: str = "postgres") -> None:
    conn = await asyncpg.connect(stack.pg_admin_dsn(database))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _in_process(target: Callable[..., Awaitable[Any]], *args: Any) -> mp.Process:
    """Run `asyncio.run(target(*args))` in a fresh process (spawned: no state shared with this one)."""
    process = _MP.Process(target=_run_async, args=(target, *args))
    process.start()
    return process


def _run_async(target: Callable[..., Awaitable[Any]], *args: Any) -> None:
    observability.configure("bench", level=30)
    asyncio.run(target(*args))


async def _raw_produce(bootstrap: str, topic: str, count: int, started_at: Any) -> None:
    records = [to_kafka(_event("bench", i)) for i in range(count)]
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    try:
        started_at.value = time.time()
        futures = [await producer.send(topic, r.value, key=r.key, headers=r.headers) for r in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _raw_consume(bootstrap: str, topic: str, count: int, ready: Any, done_at: Any) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=100)  # joined the group
        ready.set()
        seen = 0
        while seen < count:
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            seen += sum(len(items) for items in batch.values())
            if batch:
                await consumer.commit()
        done_at.value = time.time()
    finally:
        await consumer.stop()


def raw_throughput(stack: StackSettings, count: int) -> float:
    """Events/s of plain aiokafka: producer process -> consumer process (commit per batch)."""
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    asyncio.run(_create_topic(stack.kafka_bootstrap, topic))
    ready, started_at, done_at = _MP.Event(), _MP.Value("d", 0.0), _MP.Value("d", 0.0)
    consumer = _in_process(_raw_consume, stack.kafka_bootstrap, topic, count, ready, done_at)
    ready.wait(60)
    producer = _in_process(_raw_produce, stack.kafka_bootstrap, topic, count, started_at)
    producer.join()
    consumer.join()
    return count / (done_at.value - started_at.value)


async def _kit_consume(stack: StackSettings, dsn: str, service: str, ready: Any, stop: Any) -> None:
    db = Database(dsn)
    broker = KafkaBroker(stack.kafka_bootstrap, logger=None)

    async def effect(event: EventEnvelope, session: AsyncSession) -> None:
        session.add(BenchEffect(event_id=event.id))  # flushed with the batch's other rows at commit

    subscribe(broker, db, topics=[topic_for(service)], consumer=f"{service}.bench", handler=effect)
    await broker.start()
    ready.set()
    try:
        await asyncio.to_thread(stop.wait)
    finally:
        await broker.stop()
        await db.dispose()


async def _kit_relay(stack: StackSettings, dsn: str, service: str, started_at: Any, stop: Any) -> None:
    relay = OutboxRelay(asyncpg_dsn(dsn), stack.kafka_bootstrap, service=service)
    started_at.value = time.time()
    task = asyncio.create_task(relay.run())
    await asyncio.to_thread(stop.wait)
    await relay.stop()
    await task


async def _fill_outbox(dsn: str, service: str, count: int) -> None:
    db = Database(dsn)
    try:
        for start in range(0, count, 100):
            async with db.transaction() as session:
                for i in range(start, min(start + 100, count)):
                    await outbox.publish(session, _event(service, i))
    finally:
        await db.dispose()


async def _wait_for_effects(dsn: str, count: int, timeout_s: float = 300) -> float:
    conn = await asyncpg.connect(asyncpg_dsn(dsn))
    deadline = time.monotonic() + timeout_s
    try:
        while await conn.fetchval("SELECT count(*) FROM bench_effects") < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} effects after {timeout_s}s")
            await asyncio.sleep(0.01)
        return float(await conn.fetchval("SELECT max(committed_at) FROM bench_effects"))
    finally:
        await conn.close()


@contextmanager
def _kit_sides(stack: StackSettings, dsn: str, service: str) -> Iterator[tuple[Any, Any]]:
    """The consumer process (started and ready) and the relay's start time / stop flag."""
    ready, stop, started_at = _MP.Event(), _MP.Event(), _MP.Value("d", 0.0)
    consumer = _in_process(_kit_consume, stack, dsn, service, ready, stop)
    ready.wait(60)
    relay = _in_process(_kit_relay, stack, dsn, service, started_at, stop)
    try:
        yield started_at, stop
    finally:
        stop.set()
        relay.join(60)
        consumer.join(60)


def kit_throughput(stack: StackSettings, count: int) -> float:
    """Events/s from committed outbox rows to committed effects: relay process -> consumer process."""
    service = f"bench{uuid.uuid4().hex[:8]}"
    asyncio.run(_create_topic(stack.kafka_bootstrap, topic_for(service)))
    with _fresh_database(stack) as dsn:
        asyncio.run(_fill_outbox(dsn, service, count))
        with _kit_sides(stack, dsn, service) as (started_at, _):
            last_effect = asyncio.run(_wait_for_effects(dsn, count))
            while started_at.value == 0.0:
                time.sleep(0.01)
        return count / (last_effect - started_at.value)


async def _steady_writer(dsn: str, service: str, rate_per_s: int, seconds: float, out: Any) -> None:
    db = Database(dsn)
    committed: dict[str, float] = {}
    total, writers = int(rate_per_s * seconds), 8
    await asyncio.sleep(0)
    started = time.perf_counter()

    async def writer(offset: int) -> None:
        for i in range(offset, total, writers):
            due = started + i / rate_per_s
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            event = _event(service, i)
            async with db.transaction() as session:
                await outbox.publish(session, event)
            committed[event.id] = time.time()

    try:
        await asyncio.gather(*(writer(w) for w in range(writers)))
        out.put((total / (time.perf_counter() - started), committed))
    finally:
        await db.dispose()


def kit_latency(
    stack: StackSettings, rate_per_s: int, seconds: float
) -> tuple[float, list[float], list[float]]:
    """(achieved rate, latency in ms DB commit -> effect committed, of which DB commit -> marked sent)."""
    service = f"bench{uuid.uuid4().hex[:8]}"
    asyncio.run(_create_topic(stack.kafka_bootstrap, topic_for(service)))
    with _fresh_database(stack) as dsn, _kit_sides(stack, dsn, service):
        time.sleep(1.0)  # relay connected and idle
        out = _MP.Queue()
        writer = _in_process(_steady_writer, dsn, service, rate_per_s, seconds, out)
        achieved, committed = out.get(timeout=seconds * 10 + 60)
        writer.join()
        asyncio.run(_wait_for_effects(dsn, len(committed)))
        rows = asyncio.run(_effect_times(dsn))
    total = [(at - committed[event_id]) * 1000 for event_id, at, _ in rows]
    relayed = [(sent - committed[event_id]) * 1000 for event_id, _, sent in rows]
    return achieved, total, relayed


async def _effect_times(dsn: str) -> list[tuple[str, float, float]]:
    conn = await asyncpg.connect(asyncpg_dsn(dsn))
    try:
        rows = await conn.fetch(
            "SELECT e.event_id, e.committed_at, extract(epoch FROM o.sent_at) AS sent_at "
            "FROM bench_effects e JOIN outbox o USING (event_id)"
        )
        return [(r["event_id"], r["committed_at"], float(r["sent_at"])) for r in rows]
    finally:
        await conn.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(count: int) -> str:
    observability.configure("bench", level=30)
    stack = load_stack_settings()
    raw = raw_throughput(stack, count)
    kit = kit_throughput(stack, count)
    ratio = kit / raw
    rows = [
        "| measure | raw aiokafka (baseline) | kit: outbox, relay, inbox | kit / raw | target |",
        "|---|---:|---:|---:|---|",
        f"| throughput, {count:,} events | {raw:,.0f} ev/s | {kit:,.0f} ev/s | **{ratio:.0%}** "
        f"| >= 50 % {'met' if ratio >= 0.5 else 'MISSED'} |",
        "",
        "| requested rate | achieved (ev/s) | commit -> effect p50 | p99 "
        "| of which commit -> on Kafka p50 / p99 |",
        "|---:|---:|---:|---:|---:|",
    ]
    for rate in LATENCY_RATES:
        achieved, latencies, relayed = kit_latency(stack, rate_per_s=rate, seconds=LATENCY_SECONDS)
        p50, p99 = _percentile(latencies, 0.50), _percentile(latencies, 0.99)
        r50, r99 = _percentile(relayed, 0.50), _percentile(relayed, 0.99)
        verdict = f" ({'met' if p99 <= 50 else 'MISSED'}: target p99 <= 50 ms)" if rate == 1000 else ""
        rows.append(
            f"| {rate:,} | {achieved:,.0f} | {p50:.1f} ms | {p99:.1f} ms{verdict} "
            f"| {r50:.1f} / {r99:.1f} ms |"
        )
    return "\n".join([*rows, ""])


LATENCY_RATES = (100, 300, 1000)
LATENCY_SECONDS = 8.0


def _write(section: str) -> None:
    doc = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
    begin, end = "<!-- event-throughput:begin -->", "<!-- event-throughput:end -->"
    text_ = doc.read_text()
    head, _, rest = text_.partition(begin)
    _, _, tail = rest.partition(end)
    stamp = time.strftime("%Y-%m-%d")
    doc.write_text(
        f"{head}{begin}\nMeasured {stamp} by `make bench` (`bench/event_throughput.py`).\n\n"
        f"{section}{end}{tail}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    section = run(args.events)
    print(section)
    if args.write:
        _write(section)


if __name__ == "__main__":
    main()
