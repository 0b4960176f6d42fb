"""State machines as data: every stateful Forge entity's states, transitions and terminal states.

A service never assigns a state directly: it asks its machine for the transition
(`MACHINES["training_job"].transition(job.state, "pause")`), which raises `IllegalTransition`
(HTTP 409 at the edge) when the move is not allowed, and then stores `transition.target` and emits
exactly one event of type `transition.event_type` in the same database transaction.

Event types follow `forge.<service>.<entity>.<past_tense>.v1`; every transition has its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


class IllegalTransition(Exception):
    """A transition that the entity's state machine does not allow from its current state."""

    def __init__(
        self, machine: str, current: str, transition: str, allowed: Iterable[str], reason: str | None = None
    ) -> None:
        self.machine = machine
        self.current = current
        self.transition = transition
        self.allowed: tuple[str, ...] = tuple(allowed)
        super().__init__(reason or self._message())

    def _message(self) -> str:
        allowed = ", ".join(self.allowed) if self.allowed else "none (terminal)"
        entity = self.machine.replace("_", " ")
        return f"{entity} in state {self.current!r} cannot {self.transition!r}; allowed: {allowed}"


class MissingTransitionFields(IllegalTransition):
    """A transition that is legal from this state but lacks fields it requires (an audited override)."""


@dataclass(frozen=True)
class Transition:
    """One named move of a state machine, from any of `sources` to `target`, emitting `event_type`."""

    name: str
    sources: frozenset[str]
    target: str
    event_type: str
    requires: tuple[str, ...] = ()
    """Payload fields that must be present and non-blank (e.g. `approved_by`, `reason`)."""

    def missing(self, fields: Mapping[str, Any] | None) -> list[str]:
        """The required fields that `fields` lacks or leaves blank."""
        given = fields or {}
        return [name for name in self.requires if not str(given.get(name) or "").strip()]


@dataclass(frozen=True)
class StateMachine:
    """The transition table of one kind of entity, validated for consistency at construction."""

    name: str
    service: str
    entity: str
    initial: str
    states: frozenset[str]
    terminal: frozenset[str]
    transitions: Mapping[str, Transition]
    created_event_type: str
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "transitions", MappingProxyType(dict(self.transitions)))
        problems = [*self._shape_problems(), *self._transition_problems(), *self._reachability_problems()]
        if problems:
            raise ValueError(f"state machine {self.name!r} is inconsistent: " + "; ".join(problems))

    def _shape_problems(self) -> list[str]:
        problems = []
        if self.initial not in self.states:
            problems.append(f"initial state {self.initial!r} is not a state")
        if not self.terminal <= self.states:
            problems.append(f"terminal states {sorted(self.terminal - self.states)} are not states")
        if self.initial in self.terminal:
            problems.append("the initial state is terminal")
        return problems

    def _transition_problems(self) -> list[str]:
        problems = []
        for key, move in self.transitions.items():
            if key != move.name:
                problems.append(f"transition registered as {key!r} is named {move.name!r}")
            if not move.sources:
                problems.append(f"transition {move.name!r} has no source state")
            if unknown := sorted((move.sources | {move.target}) - self.states):
                problems.append(f"transition {move.name!r} uses unknown states {unknown}")
            if leaving := sorted(move.sources & self.terminal):
                problems.append(f"transition {move.name!r} leaves terminal states {leaving}")
        event_types = self.event_types()
        if len(set(event_types)) != len(event_types):
            problems.append("two transitions emit the same event type")
        if foreign := [kind for kind in event_types if not kind.startswith(f"forge.{self.service}.")]:
            problems.append(f"event types {foreign} do not belong to service {self.service!r}")
        return problems

    def _reachability_problems(self) -> list[str]:
        unreachable = sorted(self.states - self.reachable())
        return [f"states {unreachable} are unreachable from {self.initial!r}"] if unreachable else []

    def reachable(self) -> frozenset[str]:
        """Every state some sequence of transitions leads to from the initial state."""
        seen = {self.initial}
        todo = deque([self.initial])
        while todo:
            state = todo.popleft()
            for move in self.transitions.values():
                if state in move.sources and move.target not in seen:
                    seen.add(move.target)
                    todo.append(move.target)
        return frozenset(seen)

    def transition(self, current: str, name: str, *, fields: Mapping[str, Any] | None = None) -> Transition:
        """The transition `name` from state `current`; raises `IllegalTransition` when it is not allowed.

        A transition with `requires` (the audited release override) also needs those fields, non-blank,
        in `fields` (usually the command's or the event's payload): it raises `MissingTransitionFields`
        otherwise, so an override can never happen without an approver and a reason.
        """
        allowed = self.allowed(current)
        if name not in allowed:
            raise IllegalTransition(self.name, current, name, allowed, self._unknown_reason(current, name))
        move = self.transitions[name]
        if missing := move.missing(fields):
            entity = self.name.replace("_", " ")
            reason = (
                f"{entity} in state {current!r} cannot {name!r} without {', '.join(missing)} "
                f"(it requires {', '.join(move.requires)}, recorded for audit)"
            )
            raise MissingTransitionFields(self.name, current, name, allowed, reason)
        return move

    def _unknown_reason(self, current: str, name: str) -> str | None:
        entity = self.name.replace("_", " ")
        if current not in self.states:
            return f"{entity} has no state {current!r}; states: {', '.join(sorted(self.states))}"
        if name not in self.transitions:
            return f"{entity} has no transition {name!r}; transitions: {', '.join(sorted(self.transitions))}"
        return None

    def can(self, current: str, name: str) -> bool:
        """Whether the transition `name` is allowed from `current` (its `requires` fields aside)."""
        return name in self.allowed(current)

    def allowed(self, current: str) -> list[str]:
        """The transitions allowed from `current`, sorted; empty for a terminal or unknown state."""
        return sorted(name for name, move in self.transitions.items() if current in move.sources)

    def is_terminal(self, state: str) -> bool:
        """Whether `state` is terminal (no transition leaves it)."""
        return state in self.terminal

    def event_types(self) -> list[str]:
        """Every event type this machine emits: the creation event first, then one per transition."""
        return [self.created_event_type, *(move.event_type for move in self.transitions.values())]


@dataclass(frozen=True)
class _Spec:
    """Shorthand for building a machine: transitions as `name: (sources, target, past_tense)`."""

    name: str
    service: str
    entity: str
    initial: str
    states: frozenset[str]
    terminal: frozenset[str]
    moves: dict[str, tuple[frozenset[str], str, str]]
    created: str = "created"
    description: str = ""
    requires: dict[str, tuple[str, ...]] = field(default_factory=dict)
    event_types: dict[str, str] = field(default_factory=dict)
    """Event types that do not follow `forge.<service>.<entity>.<past_tense>.v1`, by transition name."""


def _event_type(service: str, entity: str, past_tense: str) -> str:
    return f"forge.{service}.{entity}.{past_tense}.v1"


def _build(spec: _Spec) -> StateMachine:
    transitions = {
        name: Transition(
            name=name,
            sources=sources,
            target=target,
            event_type=spec.event_types.get(name) or _event_type(spec.service, spec.entity, past),
            requires=spec.requires.get(name, ()),
        )
        for name, (sources, target, past) in spec.moves.items()
    }
    return StateMachine(
        name=spec.name,
        service=spec.service,
        entity=spec.entity,
        initial=spec.initial,
        states=spec.states,
        terminal=spec.terminal,
        transitions=transitions,
        created_event_type=_event_type(spec.service, spec.entity, spec.created),
        description=spec.description,
    )


def _s(*states: str) -> frozenset[str]:
    return frozenset(states)


MODEL_DELIVERED = "forge.delivery.model.delivered.v1"
"""The event the downstream inference platform consumes: a model bundle is ready to load."""


DATASET_VERSION = _build(
    _Spec(
        name="dataset_version",
        description=(
            "A dataset version: filled while a draft, validated, then published and immutable forever."
        ),
        service="dataset",
        entity="version",
        initial="draft",
        states=_s(
            "draft", "uploading", "validating", "invalid", "published", "deprecated", "archived", "discarded"
        ),
        terminal=_s("archived", "discarded"),
        moves={
            "start_upload": (_s("draft"), "uploading", "upload_started"),
            "fail_upload": (_s("uploading"), "invalid", "upload_failed"),
            "validate": (_s("uploading"), "validating", "validation_started"),
            "reject": (_s("validating"), "invalid", "validation_failed"),
            "revise": (_s("invalid"), "draft", "reopened"),
            "publish": (_s("validating"), "published", "published"),
            "deprecate": (_s("published"), "deprecated", "deprecated"),
            "restore": (_s("deprecated"), "published", "restored"),
            "archive": (_s("published", "deprecated"), "archived", "archived"),
            "discard": (_s("draft", "uploading", "validating", "invalid"), "discarded", "discarded"),
        },
    )
)

_JOB_ACTIVE = _s("pending", "queued", "running")


def _typical_job(name: str, description: str, service: str, entity: str) -> StateMachine:
    """pending -> queued -> running -> succeeded | failed | cancelled; no pause."""
    return _build(
        _Spec(
            name=name,
            description=description,
            service=service,
            entity=entity,
            initial="pending",
            states=_s("pending", "queued", "running", "succeeded", "failed", "cancelled"),
            terminal=_s("succeeded", "failed", "cancelled"),
            moves={
                "enqueue": (_s("pending"), "queued", "queued"),
                "start": (_s("queued"), "running", "started"),
                "succeed": (_s("running"), "succeeded", "succeeded"),
                "fail": (_JOB_ACTIVE, "failed", "failed"),
                "cancel": (_JOB_ACTIVE, "cancelled", "cancelled"),
            },
        )
    )


DATASET_TASK = _typical_job(
    "dataset_task",
    "A dataset task (import, expand, split, diff, convert, process): a typical job, no pause.",
    service="dataset",
    entity="task",
)

LABELING_TASK = _build(
    _Spec(
        name="labeling_task",
        description=(
            "One item to annotate: assigned, worked on, submitted and reviewed (rejections go back to "
            "rework)."
        ),
        service="labeling",
        entity="task",
        initial="open",
        states=_s(
            "open", "assigned", "in_progress", "submitted", "rejected", "accepted", "skipped", "cancelled"
        ),
        terminal=_s("accepted", "skipped", "cancelled"),
        moves={
            "assign": (_s("open"), "assigned", "assigned"),
            "unassign": (_s("assigned"), "open", "unassigned"),
            "start": (_s("assigned"), "in_progress", "started"),
            "submit": (_s("in_progress"), "submitted", "submitted"),
            "accept": (_s("submitted"), "accepted", "accepted"),
            "reject": (_s("submitted"), "rejected", "rejected"),
            "rework": (_s("rejected"), "in_progress", "rework_started"),
            "skip": (_s("assigned", "in_progress"), "skipped", "skipped"),
            "cancel": (
                _s("open", "assigned", "in_progress", "submitted", "rejected"),
                "cancelled",
                "cancelled",
            ),
        },
    )
)

_TRAINING_ACTIVE = _s("pending", "queued", "running", "paused", "preempted")

TRAINING_JOB = _build(
    _Spec(
        name="training_job",
        description=(
            "A training or fine-tuning job: a typical job that can pause/resume and be preempted by the "
            "scheduler."
        ),
        service="training",
        entity="job",
        initial="pending",
        states=_s("pending", "queued", "running", "paused", "preempted", "succeeded", "failed", "cancelled"),
        terminal=_s("succeeded", "failed", "cancelled"),
        moves={
            "enqueue": (_s("pending"), "queued", "queued"),
            "start": (_s("queued"), "running", "started"),
            "pause": (_s("running"), "paused", "paused"),
            "resume": (_s("paused"), "running", "resumed"),
            "preempt": (_s("running"), "preempted", "preempted"),
            "requeue": (_s("preempted"), "queued", "requeued"),
            "succeed": (_s("running"), "succeeded", "succeeded"),
            "fail": (_TRAINING_ACTIVE, "failed", "failed"),
            "cancel": (_TRAINING_ACTIVE, "cancelled", "cancelled"),
        },
    )
)

EVALUATION_JOB = _typical_job(
    "evaluation_job",
    "An evaluation task: one run of an evaluation configuration against a model version; no pause.",
    service="training",
    entity="eval",
)

MODEL_VERSION = _build(
    _Spec(
        name="model_version",
        description=(
            "A model version and its release gate: only a passed evaluation releases it, unless an "
            "approver overrides a failed one (audited); only a released version can be delivered; "
            "`reinstate` rolls back to it."
        ),
        service="registry",
        entity="version",
        initial="registered",
        created="registered",
        states=_s(
            "registered",
            "evaluating",
            "evaluation_passed",
            "evaluation_failed",
            "released",
            "delivered",
            "deprecated",
            "archived",
        ),
        terminal=_s("archived"),
        moves={
            "start_evaluation": (_s("registered", "evaluation_failed"), "evaluating", "evaluation_started"),
            "abort_evaluation": (_s("evaluating"), "registered", "evaluation_aborted"),
            "pass_evaluation": (_s("evaluating"), "evaluation_passed", "evaluation_passed"),
            "fail_evaluation": (_s("evaluating"), "evaluation_failed", "evaluation_failed"),
            "release": (_s("evaluation_passed"), "released", "released"),
            "override_release": (_s("evaluation_failed"), "released", "release_overridden"),
            "mark_delivered": (_s("released"), "delivered", "delivered"),
            "deprecate": (_s("released", "delivered"), "deprecated", "deprecated"),
            "reinstate": (_s("deprecated"), "released", "reinstated"),
            "archive": (
                _s(
                    "registered",
                    "evaluation_passed",
                    "evaluation_failed",
                    "released",
                    "delivered",
                    "deprecated",
                ),
                "archived",
                "archived",
            ),
        },
        requires={"override_release": ("approved_by", "reason")},
    )
)

ALLOCATION = _build(
    _Spec(
        name="allocation",
        description=(
            "The scheduler's grant of compute to one workload: queued against quotas, admitted, placed, "
            "released."
        ),
        service="scheduler",
        entity="allocation",
        initial="requested",
        created="requested",
        states=_s(
            "requested", "queued", "admitted", "running", "preempted", "released", "rejected", "cancelled"
        ),
        terminal=_s("released", "rejected", "cancelled"),
        moves={
            "enqueue": (_s("requested"), "queued", "queued"),
            "reject": (_s("requested", "queued"), "rejected", "rejected"),
            "admit": (_s("queued"), "admitted", "admitted"),
            "start": (_s("admitted"), "running", "started"),
            "preempt": (_s("admitted", "running"), "preempted", "preempted"),
            "requeue": (_s("preempted"), "queued", "requeued"),
            "release": (_s("running"), "released", "released"),
            "cancel": (
                _s("requested", "queued", "admitted", "running", "preempted"),
                "cancelled",
                "cancelled",
            ),
        },
    )
)

DELIVERY_ORDER = _build(
    _Spec(
        name="delivery_order",
        description=(
            "One execution of a deployment: package the model into a bundle, publish it, hand it to "
            "inference."
        ),
        service="delivery",
        entity="order",
        initial="created",
        states=_s("created", "packaging", "packaged", "publishing", "delivered", "failed", "cancelled"),
        terminal=_s("delivered", "failed", "cancelled"),
        moves={
            "start_packaging": (_s("created"), "packaging", "packaging_started"),
            "finish_packaging": (_s("packaging"), "packaged", "packaged"),
            "publish": (_s("packaged"), "publishing", "publishing_started"),
            "deliver": (_s("publishing"), "delivered", "delivered"),
            "fail": (_s("created", "packaging", "packaged", "publishing"), "failed", "failed"),
            "cancel": (_s("created", "packaging", "packaged", "publishing"), "cancelled", "cancelled"),
        },
        # What the inference platform consumes is the delivered *model*, not the order.
        event_types={"deliver": MODEL_DELIVERED},
    )
)

MACHINES: dict[str, StateMachine] = {
    machine.name: machine
    for machine in (
        DATASET_VERSION, DATASET_TASK, LABELING_TASK, TRAINING_JOB,
        EVALUATION_JOB, MODEL_VERSION, ALLOCATION, DELIVERY_ORDER,
    )
}  # fmt: skip
"""Every Forge state machine by name."""


def _check_event_types_are_unique(machines: Iterable[StateMachine]) -> None:
    seen: dict[str, str] = {}
    for machine in machines:
        for event_type in machine.event_types():
            if event_type in seen:
                raise ValueError(
                    f"event type {event_type!r} is emitted by {seen[event_type]} and {machine.name}"
                )
            seen[event_type] = machine.name


_check_event_types_are_unique(MACHINES.values())


def emitter_of(event_type: str) -> tuple[StateMachine, Transition | None]:
    """The machine emitting `event_type`, and its transition (None for the creation event)."""
    for machine in MACHINES.values():
        if event_type == machine.created_event_type:
            return machine, None
        for move in machine.transitions.values():
            if move.event_type == event_type:
                return machine, move
    raise KeyError(f"no state machine emits {event_type!r}")
