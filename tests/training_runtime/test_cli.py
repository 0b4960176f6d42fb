"""The runtime as a process: JSON lines on stdout, a result line, and clear errors with exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from forge_training_runtime.cli import main

from tests.training_runtime.conftest import TrainSpecFactory


def _run_cli(command: str, spec: dict[str, Any] | str, tmp_path: Path) -> tuple[int, list[dict[str, Any]]]:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    completed = subprocess.run(
        [sys.executable, "-m", "forge_training_runtime", command, "--spec", str(spec_file)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    # Every stdout line must be a JSON object: the training service parses them one by one.
    return completed.returncode, [json.loads(line) for line in completed.stdout.splitlines()]


def test_cli_streams_progress_events_as_json_lines(make_train_spec: TrainSpecFactory, tmp_path: Path) -> None:
    spec = make_train_spec(tmp_path / "run", max_steps=3, eval_every_steps=3, checkpoint_every_steps=3)

    code, events = _run_cli("train", spec.model_dump_json(), tmp_path)

    assert code == 0, events
    kinds = [e["kind"] for e in events]
    assert {"log", "progress", "metric", "checkpoint"} <= set(kinds)
    assert kinds[-1] == "result" and kinds.count("result") == 1
    assert [e["step"] for e in events if e["kind"] == "progress"] == [1, 2, 3]
    assert {e["name"] for e in events if e["kind"] == "metric"} >= {
        "train_loss",
        "eval_loss",
        "learning_rate",
    }
    result = events[-1]["result"]
    assert Path(result["merged_dir"], "model.safetensors").is_file()
    assert result["steps"] == 3


def test_bad_spec_fails_with_a_clear_error(tmp_path: Path) -> None:
    spec = {"base_model_dir": "/nowhere", "out_dir": str(tmp_path), "learning_rate": -1, "epochz": 2}

    code, events = _run_cli("train", spec, tmp_path)

    assert code == 2
    [error] = events
    assert error["kind"] == "error" and error["error_type"] == "SpecError"
    for field in ("train_file", "learning_rate", "epochz"):
        assert field in error["message"]


def test_a_spec_that_is_not_json_fails_with_a_clear_error(tmp_path: Path) -> None:
    code, events = _run_cli("evaluate", "{not json", tmp_path)

    assert code == 2
    assert events[-1]["kind"] == "error" and "invalid EvaluateSpec" in events[-1]["message"]


def test_a_failure_while_running_ends_with_an_error_line_and_status_1(
    make_train_spec: TrainSpecFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # main() sets these defaults for its process; keep them from leaking into other tests.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    spec = make_train_spec(tmp_path / "run", train_file=tmp_path / "missing.jsonl")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.model_dump_json())

    code = main(["train", "--spec", str(spec_file)])

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    assert lines[-1] == {
        "kind": "error",
        "error_type": "DataError",
        "message": f"data file not found: {tmp_path / 'missing.jsonl'}",
    }
