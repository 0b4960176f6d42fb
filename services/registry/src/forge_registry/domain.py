"""The registry's rules, free of I/O: the release gate's threshold checks and version comparison.

The gate's *states* live in `forge_contracts.state_machines.MODEL_VERSION`; this module decides which of
its transitions an evaluation leads to (`pass_evaluation` or `fail_evaluation`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from forge_contracts.activities.registry import Threshold

MACHINE = "model_version"


@dataclass(frozen=True)
class GateVerdict:
    """The gate's verdict on one set of evaluation metrics."""

    failed_checks: list[str]
    checks: list[str]

    @property
    def passed(self) -> bool:
        return not self.failed_checks

    @property
    def transition(self) -> str:
        return "pass_evaluation" if self.passed else "fail_evaluation"


def _number(value: float) -> str:
    return f"{value:g}"


def judge(metrics: Mapping[str, float], thresholds: Mapping[str, Threshold]) -> GateVerdict:
    """Check every threshold against `metrics`; a metric the evaluation did not report fails its check."""
    failed: list[str] = []
    checks: list[str] = []
    for name in sorted(thresholds):
        bound = thresholds[name]
        value = metrics.get(name)
        if value is None or math.isnan(value):
            failed.append(f"{name} missing from the evaluation's metrics")
            continue
        if bound.min is not None:
            ok = value >= bound.min
            check = f"{name} {_number(value)} {'>=' if ok else '<'} {_number(bound.min)}"
            (checks if ok else failed).append(check)
        if bound.max is not None:
            ok = value <= bound.max
            check = f"{name} {_number(value)} {'<=' if ok else '>'} {_number(bound.max)}"
            (checks if ok else failed).append(check)
    return GateVerdict(failed_checks=failed, checks=checks)


def compare_numbers(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, dict[str, float | None]]:
    """Per metric: both values and `delta` = b - a (None where one side lacks the metric)."""
    rows: dict[str, dict[str, float | None]] = {}
    for name in sorted(set(a) | set(b)):
        left, right = a.get(name), b.get(name)
        delta = right - left if left is not None and right is not None else None
        rows[name] = {"a": left, "b": right, "delta": delta}
    return rows


def compare_values(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per key (e.g. hyper-parameter): both values and whether they are equal."""
    return {
        name: {"a": a.get(name), "b": b.get(name), "same": a.get(name) == b.get(name)}
        for name in sorted(set(a) | set(b))
    }


def merged_tags(current: list[str], added: list[str]) -> list[str]:
    """`current` plus `added`, without duplicates, in first-seen order."""
    return list(dict.fromkeys([*current, *added]))
