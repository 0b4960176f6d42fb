"""`python -m forge_training_runtime <command> --spec spec.json`: the runtime as a process.

Commands: `build-base` (BuildBaseSpec), `train` (TrainSpec), `evaluate` (EvaluateSpec) and
`sample-data` (SampleDataSpec). `--spec -` reads the spec from stdin.

stdout carries only JSON lines: the events (`progress`, `metric`, `checkpoint`, `log`) as they
happen, then one `{"kind": "result", "command", "result": {...}}`. On failure the last line is
`{"kind": "error", "error_type", "message"}` and the exit status is 2 for a bad spec or bad
arguments, 1 for anything that failed while running. Library chatter goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, ValidationError

from forge_training_runtime.specs import BuildBaseSpec, EvaluateSpec, SampleDataSpec, Spec, TrainSpec

EXIT_FAILED, EXIT_BAD_SPEC = 1, 2


class SpecError(Exception):
    """The spec could not be read or did not validate."""


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    # No hub is reachable from a training pod, and progress bars would only clutter the stderr log.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Keep stdout for events only: anything printed by libraries goes to stderr instead.
    events_out, sys.stdout = sys.stdout, sys.stderr
    try:
        return _run(argv, events_out)
    finally:
        sys.stdout = events_out


def _run(argv: list[str] | None, out: TextIO) -> int:
    emit = _line_writer(out)
    parser = argparse.ArgumentParser(prog="python -m forge_training_runtime", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--spec", required=True, help="path of the JSON spec, or - for stdin")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        if exit_.code in (0, None):
            raise
        emit({"kind": "error", "error_type": "UsageError", "message": "invalid arguments (see stderr)"})
        return EXIT_BAD_SPEC
    spec_type, handler = COMMANDS[args.command]
    try:
        spec = read_spec(args.spec, spec_type)
    except SpecError as error:
        emit({"kind": "error", "error_type": "SpecError", "message": str(error)})
        return EXIT_BAD_SPEC
    try:
        result = handler(spec, emit)
    except Exception as error:
        emit({"kind": "error", "error_type": type(error).__name__, "message": str(error)})
        return EXIT_FAILED
    emit({"kind": "result", "command": args.command, "result": result.model_dump(mode="json")})
    return 0


def read_spec(source: str, spec_type: type[Spec]) -> Spec:
    """Load and validate a spec; every problem becomes a SpecError naming the fields involved."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(f"cannot read spec {source}: {error.strerror}") from None
    try:
        return spec_type.model_validate_json(text)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or '(spec)'}: {issue['msg']}"
            for issue in error.errors()
        )
        raise SpecError(f"invalid {spec_type.__name__}: {problems}") from None


def _line_writer(out: TextIO) -> Callable[[dict[str, Any]], None]:
    def emit(event: dict[str, Any]) -> None:
        out.write(json.dumps(event) + "\n")
        out.flush()

    return emit


def _build_base(spec: BaseModel, emit: Callable[[dict[str, Any]], None]) -> BaseModel:
    from forge_training_runtime.base_model import build_base_model, corpus_from_files

    assert isinstance(spec, BuildBaseSpec)
    texts = corpus_from_files(spec.corpus_files)
    emit({"kind": "log", "level": "info", "message": f"training a tokenizer on {len(texts)} texts"})
    return build_base_model(
        texts,
        spec.out_dir,
        vocab_size=spec.vocab_size,
        hidden_size=spec.hidden_size,
        layers=spec.layers,
        heads=spec.heads,
        intermediate_size=spec.intermediate_size,
        max_positions=spec.max_positions,
        initializer_range=spec.initializer_range,
        seed=spec.seed,
    )


def _train(spec: BaseModel, emit: Callable[[dict[str, Any]], None]) -> BaseModel:
    from forge_training_runtime.lora_sft import train_lora_sft

    assert isinstance(spec, TrainSpec)
    return train_lora_sft(spec, emit)


def _evaluate(spec: BaseModel, emit: Callable[[dict[str, Any]], None]) -> BaseModel:
    from forge_training_runtime.evaluation import evaluate

    assert isinstance(spec, EvaluateSpec)
    return evaluate(
        spec.model_dir,
        spec.test_file,
        max_new_tokens=spec.max_new_tokens,
        batch_size=spec.batch_size,
        max_seq_length=spec.max_seq_length,
        data_format=spec.data_format,
        max_records=spec.max_records,
        records_file=spec.records_file,
        device=spec.device,
        num_threads=spec.num_threads,
    )


def _sample_data(spec: BaseModel, emit: Callable[[dict[str, Any]], None]) -> BaseModel:
    from forge_training_runtime.sample_data import write_splits

    assert isinstance(spec, SampleDataSpec)
    return write_splits(spec)


# Each command imports torch lazily, so a bad spec is refused in well under a second.
COMMANDS: dict[str, tuple[type[Spec], Callable[[Any, Callable[[dict[str, Any]], None]], BaseModel]]] = {
    "build-base": (BuildBaseSpec, _build_base),
    "train": (TrainSpec, _train),
    "evaluate": (EvaluateSpec, _evaluate),
    "sample-data": (SampleDataSpec, _sample_data),
}
