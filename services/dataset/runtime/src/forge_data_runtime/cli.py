"""`python -m forge_data_runtime process|features --spec spec.json`: run a pipeline (`ProcessSpec`) or fit
or apply a feature transformer (`FeaturesSpec`), one JSON event per stdout line.

Events: `{"kind": "log", "message"}`, `{"kind": "progress", "progress", "phase", ...}`, then either
`{"kind": "result", "result": <report>}` (exit 0) or `{"kind": "error", "message"}` (exit 1). Anything
else that writes to stdout (Ray, a library) is moved to stderr, so the event stream stays clean.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, TextIO

import orjson
from forge_contracts.features import FeaturesSpec
from forge_contracts.processing import ProcessSpec


class Events:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        line = orjson.dumps(event).decode()
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()


def _event_stream() -> TextIO:
    """The original stdout for events; fd 1 from now on points at stderr."""
    sys.stdout.flush()
    events = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    return events


def _cause(error: BaseException) -> tuple[str, bool]:
    """The message of a failure, also when Ray wrapped it in a task error, and whether it is the
    pipeline's own (a rule that raised, an input that cannot be read: running it again cannot help)."""
    from forge_data_runtime.engine import PipelineFailed
    from forge_data_runtime.sandbox import RuleFailed

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, RuleFailed | PipelineFailed):
            return str(seen), True
        cause = getattr(seen, "cause", None)
        seen = cause if isinstance(cause, BaseException) else seen.__cause__
    text = str(error)
    for marker in ("RuleFailed: ", "PipelineFailed: "):
        if marker in text:
            return text.split(marker, 1)[1].strip().splitlines()[0], True
    return f"{type(error).__name__}: {text.strip().splitlines()[-1] if text.strip() else ''}", False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="forge_data_runtime")
    parser.add_argument("command", choices=["process", "features"])
    parser.add_argument("--spec", required=True, type=Path)
    args = parser.parse_args(argv)
    emit = Events(_event_stream())
    try:
        if args.command == "process":
            from forge_data_runtime.engine import run

            result = run(ProcessSpec.model_validate_json(args.spec.read_bytes()), emit)
        else:
            from forge_data_runtime.features import run_features

            result = run_features(FeaturesSpec.model_validate_json(args.spec.read_bytes()), emit)
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        message, user = _cause(error)
        emit({"kind": "error", "message": message[:4000], "user": user})
        return 1
    emit({"kind": "result", "result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
