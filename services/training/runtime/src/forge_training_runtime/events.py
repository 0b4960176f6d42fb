"""Events the runtime reports while it works: progress, metrics, checkpoints and logs.

Each event is a plain JSON-able dict with a `kind`; the CLI prints them one per line, the training
service reads them from the process's stdout and turns them into platform events.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

ProgressCallback = Callable[[dict[str, Any]], None]
LogLevel = Literal["debug", "info", "warning", "error"]


def _ignore(event: dict[str, Any]) -> None:
    """The callback used when the caller wants no events."""


class Reporter:
    """Builds events of the documented shapes and hands them to the caller's callback."""

    def __init__(self, callback: ProgressCallback | None = None) -> None:
        self._callback = callback or _ignore

    def progress(self, *, step: int, total_steps: int, epoch: float, eta_s: float | None) -> None:
        """`{"kind": "progress", "step", "total_steps", "epoch", "eta_s"}`; epoch is fractional."""
        self._emit(
            {
                "kind": "progress",
                "step": step,
                "total_steps": total_steps,
                "epoch": round(epoch, 4),
                "eta_s": None if eta_s is None else round(eta_s, 2),
            }
        )

    def metric(self, name: str, value: float, *, step: int | None = None) -> None:
        """`{"kind": "metric", "step", "name", "value"}`; non-finite values are sent as null."""
        self._emit({"kind": "metric", "step": step, "name": name, "value": _finite_or_none(value)})

    def checkpoint(self, *, step: int, path: Path) -> None:
        """`{"kind": "checkpoint", "step", "path"}` once the checkpoint is complete on disk."""
        self._emit({"kind": "checkpoint", "step": step, "path": str(path)})

    def log(self, message: str, *, level: LogLevel = "info") -> None:
        """`{"kind": "log", "level", "message"}`."""
        self._emit({"kind": "log", "level": level, "message": message})

    def _emit(self, event: dict[str, Any]) -> None:
        self._callback(event)


def _finite_or_none(value: float) -> float | None:
    # JSON has no NaN/Infinity; a diverged loss is reported as null rather than breaking the reader.
    return float(value) if math.isfinite(value) else None
