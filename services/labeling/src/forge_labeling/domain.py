"""Labeling rules, with no I/O: templates, reading a version's records into items, labels, export lines,
progress, and the export's lifecycle."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from forge_contracts.state_machines import MACHINES, StateMachine

TASK: StateMachine = MACHINES["labeling_task"]
TASK_STATES: tuple[str, ...] = tuple(sorted(TASK.states))
EXPORT_FILE_NAME = "labeled.jsonl"


class TemplateKind(StrEnum):
    """The labeling tools a template can configure (only text classification is built so far)."""

    text_classification = "text_classification"


class ExportFormat(StrEnum):
    jsonl = "jsonl"


class InvalidRecords(ValueError):
    """A dataset version's records cannot become labeling tasks."""


class UnknownLabel(ValueError):
    """A submitted label that the project's template does not offer."""


class IllegalExportMove(ValueError):
    """An export cannot change from its state in the way asked."""


@dataclass(frozen=True)
class Item:
    """One record of a dataset version, as a labeling task sees it."""

    item_id: str
    record: dict[str, Any]


def items(file_name: str, data: bytes, text_field: str) -> list[Item]:
    """The records of one JSONL file, in order, each identified as `<file>:<record number from 1>`.
    Every record must be a JSON object holding a string in `text_field`."""
    found: list[Item] = []
    for line_number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise InvalidRecords(f"{file_name} line {line_number}: not valid JSON ({error})") from None
        if not isinstance(record, dict):
            raise InvalidRecords(f"{file_name} line {line_number}: not a JSON object")
        if not isinstance(record.get(text_field), str):
            raise InvalidRecords(
                f"{file_name} line {line_number}: the template's text field {text_field!r} is missing "
                "or not a string"
            )
        found.append(Item(item_id=f"{file_name}:{len(found) + 1}", record=record))
    return found


def check_label(labels: Iterable[str], label: str) -> None:
    """Raise UnknownLabel unless `label` is one of the template's `labels`."""
    offered = list(labels)
    if label not in offered:
        raise UnknownLabel(f"label {label!r} is not one of the template's labels: {', '.join(offered)}")


def labeled_record(record: Mapping[str, Any], label_field: str, label: str) -> dict[str, Any]:
    """The original record with its accepted label in `label_field` (replacing a value already there)."""
    return {**record, label_field: label}


def jsonl(records: Iterable[Mapping[str, Any]]) -> bytes:
    """Records as JSON Lines (UTF-8, one object a line, newline-terminated)."""
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


def counts_by_state(counted: Mapping[str, int]) -> dict[str, int]:
    """Every task state with its count (0 when none), in a stable order."""
    return {state: int(counted.get(state, 0)) for state in TASK_STATES}


def progress(counts: Mapping[str, int]) -> float:
    """The share of tasks that are done (in a terminal state); 1.0 for a project without tasks."""
    total = sum(counts.values())
    if total == 0:
        return 1.0
    return sum(n for state, n in counts.items() if TASK.is_terminal(state)) / total


_EXPORT_MOVES: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({"pending"}), "running"),
    "succeed": (frozenset({"pending", "running"}), "succeeded"),
    "fail": (frozenset({"pending", "running"}), "failed"),
}
EXPORT_TERMINAL = frozenset({"succeeded", "failed"})


def export_move(state: str, name: str) -> str:
    """The export's state after `name` from `state`; raises IllegalExportMove when not allowed."""
    sources, target = _EXPORT_MOVES[name]
    if state not in sources:
        raise IllegalExportMove(f"export in state {state!r} cannot {name!r}")
    return target
