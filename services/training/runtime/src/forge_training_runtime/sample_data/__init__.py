"""The sample instruction dataset shipped with the runtime, for demos and tests."""

from __future__ import annotations

import random
from pathlib import Path

from forge_training_runtime.specs import SampleDataResult, SampleDataSpec

INSTRUCTIONS_FILE = Path(__file__).with_name("instructions.jsonl")


def instructions_path() -> Path:
    """Path of the shipped alpaca-format sample file."""
    return INSTRUCTIONS_FILE


def write_splits(spec: SampleDataSpec) -> SampleDataResult:
    """Shuffle the sample records with the seed and write train/validation/test JSONL files."""
    lines = [line for line in INSTRUCTIONS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(spec.seed).shuffle(lines)
    test_count = round(len(lines) * spec.test_fraction)
    validation_count = round(len(lines) * spec.validation_fraction)
    splits = {
        "test": lines[:test_count],
        "validation": lines[test_count : test_count + validation_count],
        "train": lines[test_count + validation_count :],
    }
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: spec.out_dir / f"{name}.jsonl" for name in splits}
    for name, split_lines in splits.items():
        paths[name].write_text("".join(f"{line}\n" for line in split_lines), encoding="utf-8")
    return SampleDataResult(
        train_file=paths["train"],
        validation_file=paths["validation"],
        test_file=paths["test"],
        counts={name: len(split_lines) for name, split_lines in splits.items()},
    )
