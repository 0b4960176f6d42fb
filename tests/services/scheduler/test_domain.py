"""Admission arithmetic, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from forge_scheduler import domain
from forge_scheduler.domain import Resources, Waiting
from hypothesis import given
from hypothesis import strategies as st

T0 = datetime(2025, 3, 3, tzinfo=UTC)
QUOTA = Resources(4000, 16, {"nvidia.com/gpu": 2})


def waiting(name: str, priority: int, cpu: int, *, after_s: int = 0, gpus: int = 0) -> Waiting:
    needs = Resources(cpu, 1, {"nvidia.com/gpu": gpus} if gpus else {})
    return Waiting(name, priority, T0 + timedelta(seconds=after_s), needs)


def test_a_gang_needs_its_per_worker_resources_times_its_size() -> None:
    per_worker = Resources(500, 2, {"nvidia.com/gpu": 1})
    assert domain.demand(per_worker, 3) == Resources(1500, 6, {"nvidia.com/gpu": 3})


def test_a_gang_that_fits_the_quota_after_current_usage_fits() -> None:
    assert domain.fits(Resources(2000, 8), used=Resources(2000, 8), quota=QUOTA)
    assert not domain.fits(Resources(2001, 8), used=Resources(2000, 8), quota=QUOTA)


def test_an_accelerator_the_quota_lacks_never_fits_and_says_why() -> None:
    reason = domain.never_fits_reason(Resources(100, 1, {"huawei.com/Ascend910": 1}), 2, QUOTA)
    assert reason == "gang of 2 exceeds the project quota (huawei.com/Ascend910: needs 2, has 0)"
    assert domain.never_fits_reason(Resources(1000, 4, {"nvidia.com/gpu": 1}), 2, QUOTA) is None


def test_the_queue_is_ordered_by_priority_then_arrival() -> None:
    queue = [waiting("late-high", 5, 1, after_s=9), waiting("early-low", 1, 1), waiting("early-high", 5, 1)]
    assert [w.allocation_id for w in domain.queue_order(queue)] == ["early-high", "late-high", "early-low"]


def test_admission_stops_at_the_first_allocation_that_does_not_fit() -> None:
    queue = [waiting("big", 9, 3000), waiting("small", 1, 500), waiting("mid", 5, 2000, after_s=1)]
    assert domain.admissible(queue, used=Resources(), quota=QUOTA) == ["big"]
    # with "big" running, "mid" is next and does not fit: "small" behind it is not admitted either
    assert domain.admissible(queue[1:], used=Resources(3000, 1), quota=QUOTA) == []


def test_usage_of_a_released_gang_is_its_size_times_its_duration() -> None:
    used = domain.usage_of(Resources(2000, 1, {"nvidia.com/gpu": 1}), 2, T0, T0 + timedelta(seconds=10))
    assert (used.duration_s, used.cpu_core_seconds, used.accelerator_seconds) == (10.0, 40.0, 20.0)


requests = st.lists(
    st.builds(
        waiting,
        name=st.uuids().map(str),
        priority=st.integers(0, 10),
        cpu=st.integers(1, 5000),
        after_s=st.integers(0, 100),
        gpus=st.integers(0, 3),
    ),
    max_size=30,
)


@given(requests, st.integers(0, 4000), st.integers(0, 2))
def test_admitted_usage_never_exceeds_the_quota(queue: list[Waiting], used_cpu: int, used_gpus: int) -> None:
    used = Resources(used_cpu, 0, {"nvidia.com/gpu": used_gpus})
    chosen = set(domain.admissible(queue, used, QUOTA))
    total = domain.total([used, *(w.needs for w in queue if w.allocation_id in chosen)])
    assert not domain.shortfalls(total, QUOTA)


@given(requests)
def test_admission_follows_queue_order_without_skipping(queue: list[Waiting]) -> None:
    chosen = domain.admissible(queue, Resources(), QUOTA)
    ordered = [w.allocation_id for w in domain.queue_order(queue)]
    assert chosen == ordered[: len(chosen)]


# Queue names

LABEL = st.from_regex(domain.DNS_LABEL, fullmatch=True)
HYPHENATED = st.text("ab-", min_size=1, max_size=63).filter(domain.DNS_LABEL.fullmatch)
LONG = st.text("ab-", min_size=40, max_size=63).filter(domain.DNS_LABEL.fullmatch)
PART = LABEL | HYPHENATED | LONG


def test_a_hyphen_in_the_tenant_or_in_the_project_gives_different_queues() -> None:
    assert domain.queue_name("a-b", "c") != domain.queue_name("a", "b-c")
    assert domain.queue_name("globex", "vision") == "globex-vision"


@given(st.tuples(PART, PART), st.tuples(PART, PART))
def test_distinct_projects_never_share_a_queue(one: tuple[str, str], other: tuple[str, str]) -> None:
    if one != other:
        assert domain.queue_name(*one) != domain.queue_name(*other)


@given(HYPHENATED, HYPHENATED, HYPHENATED)
def test_moving_a_hyphenated_piece_from_tenant_to_project_changes_the_queue(a: str, b: str, c: str) -> None:
    tenant, project = f"{a}-{b}", f"{b}-{c}"
    if len(tenant) <= 63 and len(project) <= 63:
        assert domain.queue_name(tenant, c) != domain.queue_name(a, project)


@given(PART, PART)
def test_a_queue_name_is_a_dns_label(tenant: str, project: str) -> None:
    name = domain.queue_name(tenant, project)
    assert len(name) <= 63
    assert domain.DNS_LABEL.fullmatch(name)
