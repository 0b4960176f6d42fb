"""Workflows recorded as they ran (tests/workflow_histories, written by the tests that ran them with
FORGE_RECORD_HISTORIES=1) replay on the current code. A change to a workflow that would break one still
running (a different activity order, a new step without `workflow.patched`) fails here; no server is
needed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from forge_kit.temporal import replay
from temporalio.client import WorkflowHistory

from tests.harness import HISTORIES, workflow_types

RECORDED = sorted(HISTORIES.glob("*.json"))


def test_the_recorded_histories_cover_every_path_of_the_chain_the_training_job_and_dataset_tasks() -> None:
    assert {path.stem for path in RECORDED} >= {
        "model-chain-delivered",
        "model-chain-approved-override",
        "model-chain-cancelled",
        "model-chain-training-worker-lost",
        "training-job-in-chain",
        "training-job-cancelled",
        "training-job-resumed-on-another-worker",
        "training-job-scheduled-after-waiting",
        "training-job-rejected-by-scheduler",
        "dataset-task-succeeded",
        "dataset-task-failed",
        "dataset-task-cancelled",
    }


@pytest.mark.parametrize("path", RECORDED, ids=lambda path: path.stem)
async def test_a_recorded_workflow_replays_on_the_current_code(path: Path) -> None:
    recorded = await asyncio.to_thread(path.read_text)
    await replay(WorkflowHistory.from_json(path.stem, recorded), workflow_types())
