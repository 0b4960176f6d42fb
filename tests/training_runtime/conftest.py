"""Shared, session-scoped artefacts for the training runtime tests: data splits, a base model, one run.

Building them once keeps the whole directory fast on two CPU cores; tests that need their own run
(resume, CLI) start from the shared base model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from forge_training_runtime.base_model import build_base_model, corpus_from_files
from forge_training_runtime.lora_sft import train_lora_sft
from forge_training_runtime.sample_data import write_splits
from forge_training_runtime.specs import SampleDataResult, SampleDataSpec, TrainResult, TrainSpec

FINE_TUNE_STEPS = 80


@dataclass(frozen=True)
class FineTuneRun:
    """A finished fine-tuning run and every event it reported."""

    spec: TrainSpec
    result: TrainResult
    events: list[dict[str, Any]]

    def metric(self, name: str) -> list[float]:
        """The reported values of one metric, in order."""
        return [e["value"] for e in self.events if e["kind"] == "metric" and e["name"] == name]


@pytest.fixture(scope="session")
def splits(tmp_path_factory: pytest.TempPathFactory) -> SampleDataResult:
    return write_splits(SampleDataSpec(out_dir=tmp_path_factory.mktemp("data"), seed=0))


@pytest.fixture(scope="session")
def base_model_dir(tmp_path_factory: pytest.TempPathFactory, splits: SampleDataResult) -> Path:
    out_dir = tmp_path_factory.mktemp("base")
    build_base_model(corpus_from_files([splits.train_file]), out_dir, seed=0)
    return out_dir


def tiny_train_spec(
    base_model_dir: Path, splits: SampleDataResult, out_dir: Path, **overrides: Any
) -> TrainSpec:
    """Hyper-parameters that make the tiny model learn within seconds."""
    values: dict[str, Any] = {
        "base_model_dir": base_model_dir,
        "train_file": splits.train_file,
        "validation_file": splits.validation_file,
        "out_dir": out_dir,
        "learning_rate": 1e-2,
        "batch_size": 16,
        "max_steps": FINE_TUNE_STEPS,
        "lora": {"rank": 8, "alpha": 16, "dropout": 0.0},
        "device": "cpu",
    }
    return TrainSpec.model_validate(values | overrides)


TrainSpecFactory = Callable[..., TrainSpec]


@pytest.fixture(scope="session")
def make_train_spec(base_model_dir: Path, splits: SampleDataResult) -> TrainSpecFactory:
    """`make_train_spec(out_dir, **overrides)`: a quick spec on the sample data and shared base model."""

    def make(out_dir: Path, **overrides: Any) -> TrainSpec:
        return tiny_train_spec(base_model_dir, splits, out_dir, **overrides)

    return make


@pytest.fixture(scope="session")
def fine_tuned(
    tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path, splits: SampleDataResult
) -> FineTuneRun:
    spec = tiny_train_spec(
        base_model_dir,
        splits,
        tmp_path_factory.mktemp("fine-tuned"),
        eval_every_steps=FINE_TUNE_STEPS // 2,
        checkpoint_every_steps=FINE_TUNE_STEPS // 2,
    )
    events: list[dict[str, Any]] = []
    result = train_lora_sft(spec, events.append)
    return FineTuneRun(spec, result, events)
