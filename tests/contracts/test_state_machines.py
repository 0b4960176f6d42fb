"""State machines: the release gate, terminal states, illegal transitions, and random walks."""

from __future__ import annotations

import re

import pytest
from forge_contracts.state_machines import (
    MACHINES,
    MODEL_DELIVERED,
    IllegalTransition,
    MissingTransitionFields,
    StateMachine,
    Transition,
)
from hypothesis import given
from hypothesis import strategies as st

MODEL = MACHINES["model_version"]
APPROVAL = {"approved_by": "erin", "reason": "accuracy gap within noise; tracked in RISK-42"}
JOBS = ["dataset_task", "training_job", "evaluation_job"]


def test_the_registry_holds_the_eight_machines() -> None:
    assert set(MACHINES) == {
        "dataset_version", "dataset_task", "labeling_task", "training_job",
        "evaluation_job", "model_version", "allocation", "delivery_order",
    }  # fmt: skip


def test_a_model_version_whose_evaluation_failed_cannot_be_released() -> None:
    with pytest.raises(IllegalTransition) as raised:
        MODEL.transition("evaluation_failed", "release")

    assert raised.value.current == "evaluation_failed"
    assert raised.value.transition == "release"
    assert "override_release" in raised.value.allowed
    assert "release" not in raised.value.allowed


def test_a_model_version_that_passed_evaluation_can_be_released() -> None:
    assert MODEL.transition("evaluation_passed", "release").target == "released"


@pytest.mark.parametrize("state", sorted(MODEL.states - {"evaluation_passed"}))
def test_release_is_only_possible_after_a_passed_evaluation(state: str) -> None:
    assert not MODEL.can(state, "release")


@pytest.mark.parametrize(
    "fields",
    [None, {}, {"approved_by": "erin"}, {"reason": "deadline"}, {"approved_by": "erin", "reason": "   "}],
    ids=["nothing", "empty", "no-reason", "no-approver", "blank-reason"],
)
def test_override_release_requires_an_approver_and_a_reason(fields: dict[str, str] | None) -> None:
    with pytest.raises(MissingTransitionFields) as raised:
        MODEL.transition("evaluation_failed", "override_release", fields=fields)

    assert "override_release" in str(raised.value)
    assert isinstance(raised.value, IllegalTransition)  # so the service kit answers 409


def test_an_approved_override_releases_a_version_that_failed_evaluation() -> None:
    move = MODEL.transition("evaluation_failed", "override_release", fields=APPROVAL)

    assert move.target == "released"
    assert move.event_type == "forge.registry.version.release_overridden.v1"


def test_an_override_is_not_a_way_around_evaluation_altogether() -> None:
    for state in sorted(MODEL.states - {"evaluation_failed"}):
        with pytest.raises(IllegalTransition):
            MODEL.transition(state, "override_release", fields=APPROVAL)


def test_only_a_released_model_version_can_be_delivered() -> None:
    into_delivered = [move for move in MODEL.transitions.values() if move.target == "delivered"]

    assert [move.sources for move in into_delivered] == [frozenset({"released"})]
    assert [state for state in sorted(MODEL.states) if MODEL.can(state, "mark_delivered")] == ["released"]


def test_a_rolled_back_model_version_is_released_again() -> None:
    assert MODEL.transition("deprecated", "reinstate").target == "released"


def test_a_published_dataset_version_never_goes_back_to_being_editable() -> None:
    versions = MACHINES["dataset_version"]
    editable = {"draft", "uploading", "validating", "invalid"}
    after_publication = _reachable_from(versions, "published")

    assert after_publication.isdisjoint(editable)


@pytest.mark.parametrize("machine", MACHINES.values(), ids=lambda machine: machine.name)
def test_terminal_states_have_no_way_out(machine: StateMachine) -> None:
    for state in sorted(machine.terminal):
        assert machine.allowed(state) == []
        for name in machine.transitions:
            with pytest.raises(IllegalTransition, match="none \\(terminal\\)"):
                machine.transition(state, name)


@pytest.mark.parametrize("machine", MACHINES.values(), ids=lambda machine: machine.name)
def test_every_state_is_reachable_from_the_initial_state(machine: StateMachine) -> None:
    assert _reachable_from(machine, machine.initial) == machine.states


@pytest.mark.parametrize("machine", MACHINES.values(), ids=lambda machine: machine.name)
def test_every_non_terminal_state_leads_to_a_terminal_one(machine: StateMachine) -> None:
    for state in sorted(machine.states - machine.terminal):
        assert _reachable_from(machine, state) & machine.terminal, state


@pytest.mark.parametrize("name", [*JOBS, "allocation", "delivery_order", "labeling_task"])
def test_cancel_is_allowed_from_every_non_terminal_state(name: str) -> None:
    machine = MACHINES[name]

    for state in sorted(machine.states - machine.terminal):
        assert machine.transition(state, "cancel").target == "cancelled"


@pytest.mark.parametrize("name", JOBS)
def test_a_job_runs_from_pending_through_the_queue_to_success(name: str) -> None:
    machine = MACHINES[name]
    state = machine.initial
    for step in ("enqueue", "start", "succeed"):
        state = machine.transition(state, step).target

    assert (machine.initial, state) == ("pending", "succeeded")


def test_a_training_job_can_pause_and_resume_but_an_evaluation_cannot() -> None:
    training, evaluation = MACHINES["training_job"], MACHINES["evaluation_job"]

    assert training.transition(training.transition("running", "pause").target, "resume").target == "running"
    assert not evaluation.can("running", "pause")


@pytest.mark.parametrize("name", ["training_job", "allocation"])
def test_preempted_work_goes_back_to_the_queue(name: str) -> None:
    machine = MACHINES[name]

    assert machine.transition("running", "preempt").target == "preempted"
    assert machine.transition("preempted", "requeue").target == "queued"


def test_a_rejected_annotation_goes_back_to_work() -> None:
    labeling = MACHINES["labeling_task"]

    assert labeling.transition("submitted", "reject").target == "rejected"
    assert labeling.transition("rejected", "rework").target == "in_progress"


def test_an_illegal_transition_tells_the_user_what_is_allowed() -> None:
    with pytest.raises(IllegalTransition) as raised:
        MACHINES["training_job"].transition("succeeded", "pause")

    assert str(raised.value) == "training job in state 'succeeded' cannot 'pause'; allowed: none (terminal)"
    assert raised.value.machine == "training_job"
    assert raised.value.allowed == ()


def test_an_illegal_transition_from_a_live_state_lists_the_allowed_ones() -> None:
    with pytest.raises(IllegalTransition, match="allowed: cancel, fail, resume"):
        MACHINES["training_job"].transition("paused", "succeed")


@pytest.mark.parametrize(("state", "name"), [("bogus", "pause"), ("running", "explode")])
def test_an_unknown_state_or_transition_is_illegal(state: str, name: str) -> None:
    machine = MACHINES["training_job"]

    with pytest.raises(IllegalTransition):
        machine.transition(state, name)
    assert not machine.can(state, name)


def test_every_transition_emits_its_own_event_type() -> None:
    emitted = [kind for machine in MACHINES.values() for kind in machine.event_types()]

    assert len(emitted) == len(set(emitted))


@pytest.mark.parametrize("machine", MACHINES.values(), ids=lambda machine: machine.name)
def test_event_types_follow_the_naming_convention(machine: StateMachine) -> None:
    pattern = re.compile(rf"^forge\.{machine.service}\.{machine.entity}\.[a-z_]+\.v1$")

    for kind in machine.event_types():
        assert pattern.match(kind) or kind == MODEL_DELIVERED, kind


def test_the_delivery_order_emits_the_event_the_inference_platform_consumes() -> None:
    assert MACHINES["delivery_order"].transition("publishing", "deliver").event_type == (
        "forge.delivery.model.delivered.v1"
    )


def _machine(**changes: object) -> StateMachine:
    fields: dict[str, object] = {
        "name": "toy", "service": "toy", "entity": "thing", "initial": "a",
        "states": frozenset({"a", "b"}), "terminal": frozenset({"b"}),
        "transitions": {"finish": Transition("finish", frozenset({"a"}), "b", "forge.toy.thing.finished.v1")},
        "created_event_type": "forge.toy.thing.created.v1",
    }  # fmt: skip
    return StateMachine(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_consistent_machine_can_be_built() -> None:
    assert _machine().allowed("a") == ["finish"]


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"transitions": {"go": Transition("go", frozenset({"a"}), "z", "forge.toy.thing.gone.v1")}},
            "unknown",
        ),
        (
            {
                "transitions": {
                    "finish": Transition("finish", frozenset({"a"}), "b", "forge.toy.thing.finished.v1"),
                    "undo": Transition("undo", frozenset({"b"}), "a", "forge.toy.thing.undone.v1"),
                }
            },
            "leaves terminal",
        ),
        ({"states": frozenset({"a", "b", "c"})}, "unreachable"),
        ({"initial": "b"}, "initial state is terminal"),
        ({"created_event_type": "forge.toy.thing.finished.v1"}, "same event type"),
        ({"service": "other"}, "do not belong"),
    ],
    ids=[
        "unknown-state",
        "leaves-terminal",
        "unreachable",
        "terminal-initial",
        "duplicate-event",
        "foreign-event",
    ],
)
def test_an_inconsistent_machine_is_refused_at_construction(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        _machine(**changes)


@given(
    machine=st.sampled_from(list(MACHINES.values())), choices=st.lists(st.integers(min_value=0), max_size=60)
)
def test_a_random_walk_of_legal_transitions_stays_in_the_machine(
    machine: StateMachine, choices: list[int]
) -> None:
    state = machine.initial
    for choice in choices:
        allowed = machine.allowed(state)
        if not allowed:
            assert machine.is_terminal(state)
            break
        name = allowed[choice % len(allowed)]
        state = machine.transition(state, name, fields=APPROVAL).target
        assert state in machine.states


@given(
    machine=st.sampled_from(list(MACHINES.values())),
    choices=st.lists(st.integers(min_value=0), max_size=60),
    name=st.text(max_size=20),
)
def test_a_walk_never_leaves_a_terminal_state(machine: StateMachine, choices: list[int], name: str) -> None:
    state = machine.initial
    for choice in choices:
        allowed = machine.allowed(state)
        if not allowed:
            break
        state = machine.transition(state, allowed[choice % len(allowed)], fields=APPROVAL).target
    if machine.is_terminal(state):
        for attempt in [*machine.transitions, name]:
            assert not machine.can(state, attempt)


def _reachable_from(machine: StateMachine, start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for name in machine.allowed(todo.pop()):
            target = machine.transitions[name].target
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen
