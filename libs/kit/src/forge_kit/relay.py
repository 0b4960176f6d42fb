"""The outbox relay: publishes committed outbox rows to Kafka, in order per key, at least once.

How it stays correct:
- **Commit order per key.** `outbox.publish` serialises writers of the same key (an advisory lock), so
  a key's outbox ids follow commit order; the relay never needs to wait for unrelated transactions.
- **Order per key with several relays.** Rows are split into `shard_count` shards by a hash of the key;
  a relay publishes only the shards it holds a PostgreSQL advisory lock for (session locks on its
  listening connection; released when it dies, then another relay takes them over). Within its shards it
  publishes in id order, rows locked `FOR UPDATE SKIP LOCKED`, with an idempotent producer (acks=all).
- **Marked only when acknowledged.** A row is marked sent only after the broker acknowledged it, and for
  each key only the acknowledged prefix: after a failed send, later rows of that key are sent again
  (a duplicate, which consumers' inboxes absorb) rather than left to overtake the failed one.
- **No busy polling.** It waits on LISTEN/NOTIFY (an insert trigger), with a slow fallback poll.
- **Recovers by itself.** Lost database or broker connections are retried with capped backoff.
- **Graceful stop.** `stop()` lets the current batch finish (publish + mark) before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from forge_kit.messaging_tables import OUTBOX_CHANNEL
from forge_kit.observability import logger

SHARD_LOCK_SPACE = 4_137_001  # first key of the (int, int) advisory locks held for outbox shards

PUBLISHED = Counter("forge_outbox_published_total", "Outbox events acknowledged by Kafka", ["service"])
FAILED = Counter(
    "forge_outbox_publish_failures_total", "Outbox events Kafka did not acknowledge", ["service"]
)

_SELECT = """
SELECT id, topic, key, headers, value FROM outbox
WHERE sent_at IS NULL
  AND ((hashtext(key) & 2147483647) % $2) = ANY($3::int[])
ORDER BY id
LIMIT $1
FOR UPDATE SKIP LOCKED
"""

AfterPublish = Callable[[Sequence[int]], Awaitable[None]]


class RelayError(RuntimeError):
    """Some events of a batch were not acknowledged by the broker; they will be sent again."""


def acknowledged_prefix(rows: Sequence[Any], results: Sequence[object]) -> list[int]:
    """Ids to mark sent: per key, the rows acknowledged before that key's first failure."""
    failed_keys: set[str] = set()
    acked: list[int] = []
    for row, result in zip(rows, results, strict=True):
        if isinstance(result, BaseException):
            failed_keys.add(row["key"])
        elif row["key"] not in failed_keys:
            acked.append(row["id"])
    return acked


class OutboxRelay:
    """Publishes one service database's outbox to Kafka until stopped."""

    def __init__(
        self,
        dsn: str,
        bootstrap_servers: str,
        *,
        service: str,
        batch_size: int = 500,
        idle_poll_s: float = 1.0,
        shard_count: int = 16,
        max_shards: int | None = None,
        after_publish: AfterPublish | None = None,
    ) -> None:
        self.dsn = dsn
        self.bootstrap_servers = bootstrap_servers
        self.service = service
        self.batch_size = batch_size
        self.idle_poll_s = idle_poll_s
        self.shard_count = shard_count
        self.max_shards = max_shards or shard_count
        self.after_publish = after_publish  # a test hook: runs after the broker acked, before marking
        self.shards: set[int] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._log = logger(component="outbox-relay", service=service)

    async def run(self) -> None:
        """Publish until `stop()`; reconnects to PostgreSQL and Kafka by itself."""
        backoff_s = 0.2
        try:
            while not self._stopping:
                try:
                    await self._run_connected()
                    backoff_s = 0.2
                except (
                    OSError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                    RelayError,
                    TimeoutError,
                ) as error:
                    self._log.warning("relay.retrying", error=repr(error), backoff_s=backoff_s)
                    self.shards.clear()
                    await self._sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, 5.0)
                except Exception as error:
                    # Kafka client errors and anything unexpected: log with context, back off, retry.
                    self._log.error("relay.error", error=repr(error), backoff_s=backoff_s)
                    self.shards.clear()
                    await self._sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, 5.0)
        finally:
            self._stopped.set()

    async def stop(self) -> None:
        """Stop after the batch in progress has been published and marked."""
        self._stopping = True
        self._wake.set()
        await self._stopped.wait()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _run_connected(self) -> None:
        listener = await asyncpg.connect(self.dsn)
        worker = await asyncpg.connect(self.dsn)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            request_timeout_ms=15_000,
            max_batch_size=256 * 1024,
        )
        try:
            await producer.start()
            await listener.add_listener(OUTBOX_CHANNEL, lambda *_: self._wake.set())
            self._log.info("relay.connected")
            claimed_at = -1e9
            loop = asyncio.get_running_loop()
            while not self._stopping:
                if len(self.shards) < self.max_shards and loop.time() - claimed_at > 1.0:
                    await self._claim_shards(listener)
                    claimed_at = loop.time()
                if not self.shards:
                    await self._sleep(self.idle_poll_s)
                    continue
                self._wake.clear()
                published = await self._publish_batch(worker, producer)
                if published < self.batch_size:
                    await self._sleep(self.idle_poll_s)
        finally:
            with contextlib.suppress(Exception):
                await producer.stop()
            for conn in (worker, listener):
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)
            self.shards.clear()

    async def _claim_shards(self, listener: asyncpg.Connection) -> None:
        for shard in range(self.shard_count):
            if len(self.shards) >= self.max_shards:
                return
            if shard in self.shards:
                continue
            if await listener.fetchval("SELECT pg_try_advisory_lock($1, $2)", SHARD_LOCK_SPACE, shard):
                self.shards.add(shard)

    async def _publish_batch(self, worker: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        async with worker.transaction():
            rows = await worker.fetch(_SELECT, self.batch_size, self.shard_count, sorted(self.shards))
            if not rows:
                return 0
            futures = []
            for row in rows:
                headers = [(name, value.encode()) for name, value in json.loads(row["headers"])]
                futures.append(
                    await producer.send(
                        row["topic"], value=row["value"], key=row["key"].encode(), headers=headers
                    )
                )
            results = await asyncio.gather(*futures, return_exceptions=True)
            acked = acknowledged_prefix(rows, results)
            if self.after_publish is not None:
                await self.after_publish(acked)
            await worker.execute(
                "UPDATE outbox SET sent_at = clock_timestamp() WHERE id = ANY($1::bigint[])", acked
            )
        PUBLISHED.labels(self.service).inc(len(acked))
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            FAILED.labels(self.service).inc(len(failures))
            raise RelayError(f"{len(failures)} of {len(rows)} events not acknowledged: {failures[0]!r}")
        return len(rows)
