"""Admission arithmetic, with no I/O: what a gang needs, whether it fits a project's quota, and which
queued allocations a project admits now.

Policy: a project's queue is ordered by priority (higher first), then by arrival (FIFO). Admission walks
the queue in that order and stops at the first allocation that does not fit (no backfill), so a large
gang is never starved by a stream of small requests behind it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Resources:
    """An amount of compute: CPU in millicores, memory in bytes, accelerators by kind."""

    cpu_millis: int = 0
    memory_bytes: int = 0
    accelerators: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: Resources) -> Resources:
        kinds = set(self.accelerators) | set(other.accelerators)
        return Resources(
            self.cpu_millis + other.cpu_millis,
            self.memory_bytes + other.memory_bytes,
            {k: self.accelerators.get(k, 0) + other.accelerators.get(k, 0) for k in sorted(kinds)},
        )

    def __sub__(self, other: Resources) -> Resources:
        kinds = set(self.accelerators) | set(other.accelerators)
        return Resources(
            self.cpu_millis - other.cpu_millis,
            self.memory_bytes - other.memory_bytes,
            {k: self.accelerators.get(k, 0) - other.accelerators.get(k, 0) for k in sorted(kinds)},
        )

    def times(self, count: int) -> Resources:
        """`count` workers' worth of these resources."""
        return Resources(
            self.cpu_millis * count,
            self.memory_bytes * count,
            {kind: n * count for kind, n in self.accelerators.items()},
        )

    def amounts(self) -> dict[str, int]:
        """Every resource by name (`cpu_millis`, `memory_bytes`, then accelerator kinds); zeros dropped
        for accelerators."""
        named = {"cpu_millis": self.cpu_millis, "memory_bytes": self.memory_bytes}
        named.update({kind: n for kind, n in sorted(self.accelerators.items()) if n})
        return named

    def accelerator_count(self) -> int:
        return sum(self.accelerators.values())


ZERO = Resources()


def demand(per_worker: Resources, gang_size: int) -> Resources:
    """What a gang of `gang_size` workers needs at once."""
    if gang_size < 1:
        raise ValueError("a gang has at least one worker")
    return per_worker.times(gang_size)


def total(items: Iterable[Resources]) -> Resources:
    """The sum of several amounts (the usage of the admitted allocations)."""
    result = ZERO
    for item in items:
        result = result + item
    return result


def shortfalls(needed: Resources, available: Resources) -> list[str]:
    """Each resource `needed` has more of than `available`, as `name: needs X, has Y`; empty if it fits."""
    have = available.amounts()
    problems = []
    for name, amount in needed.amounts().items():
        limit = have.get(name, available.accelerators.get(name, 0))
        if amount > limit:
            problems.append(f"{name}: needs {amount}, has {limit}")
    return problems


def fits(needed: Resources, used: Resources, quota: Resources) -> bool:
    """Whether `needed` fits in what `quota` leaves after `used`."""
    return not shortfalls(needed, quota - used)


def never_fits_reason(per_worker: Resources, gang_size: int, quota: Resources) -> str | None:
    """Why a gang could never be admitted under `quota` even with nothing else running; None if it could."""
    problems = shortfalls(demand(per_worker, gang_size), quota)
    if not problems:
        return None
    return f"gang of {gang_size} exceeds the project quota ({'; '.join(problems)})"


@dataclass(frozen=True)
class Waiting:
    """A queued allocation, as admission sees it."""

    allocation_id: str
    priority: int
    arrived_at: datetime
    needs: Resources


def queue_order(waiting: Iterable[Waiting]) -> list[Waiting]:
    """The queue: higher priority first, then first come first served (id breaks ties)."""
    return sorted(waiting, key=lambda w: (-w.priority, w.arrived_at, w.allocation_id))


def admissible(waiting: Iterable[Waiting], used: Resources, quota: Resources) -> list[str]:
    """The ids to admit now, in queue order: each one that fits after those before it, stopping at the
    first that does not (no backfill)."""
    admitted: list[str] = []
    for candidate in queue_order(waiting):
        if not fits(candidate.needs, used, quota):
            break
        used = used + candidate.needs
        admitted.append(candidate.allocation_id)
    return admitted


def position(allocation_id: str, waiting: Sequence[Waiting]) -> int | None:
    """Where an allocation stands in its queue (0 = next), or None if it is not waiting."""
    for index, item in enumerate(queue_order(waiting)):
        if item.allocation_id == allocation_id:
            return index
    return None


@dataclass(frozen=True)
class Usage:
    """Final usage of a released allocation, for cost accounting."""

    duration_s: float
    cpu_core_seconds: float
    accelerator_seconds: float


def usage_of(per_worker: Resources, gang_size: int, started_at: datetime, ended_at: datetime) -> Usage:
    """What a gang consumed between `started_at` and `ended_at`."""
    seconds = max(0.0, (ended_at - started_at).total_seconds())
    held = demand(per_worker, gang_size)
    return Usage(
        duration_s=seconds,
        cpu_core_seconds=held.cpu_millis / 1000 * seconds,
        accelerator_seconds=held.accelerator_count() * seconds,
    )


DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
"""A DNS-1123 label: what names a tenant, a project and a queue (a Volcano queue, a namespace)."""


def queue_name(tenant: str, project: str) -> str:
    """The queue of a tenant's project, a DNS label of at most 63 characters; distinct projects never
    share one.

    `<tenant>-<project>` with the hyphens inside each part doubled, so the one single hyphen says where
    the tenant ends: `a-b` + `c` is `a--b-c`, `a` + `b-c` is `a-b--c` (`globex` + `vision` stays
    `globex-vision`). A name longer than 63 characters is cut and ends in `---` and 65 bits of a SHA-256
    of the whole name instead (a run of three hyphens never occurs in the other form)."""
    for part in (tenant, project):
        if not DNS_LABEL.fullmatch(part):
            raise ValueError(f"{part!r} is not a DNS label")
    name = f"{tenant.replace('-', '--')}-{project.replace('-', '--')}"
    if len(name) <= 63:
        return name
    digest = base64.b32encode(hashlib.sha256(name.encode()).digest()).decode().lower()[:13]
    head = re.sub("-+", "-", name)[: 63 - 3 - len(digest)].rstrip("-")
    return f"{head}---{digest}"
