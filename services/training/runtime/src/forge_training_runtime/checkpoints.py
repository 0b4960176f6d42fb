"""Training checkpoints: everything needed to resume a run exactly where it stopped.

`checkpoints/step-N/` holds the adapter (`adapter/`, peft format), and `trainer_state.pt` with the
optimizer, learning-rate schedule, RNG states and step. A checkpoint is written under a temporary
name and renamed when complete, so a crash mid-write never leaves a half checkpoint as the latest.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel, set_peft_model_state_dict
from safetensors.torch import load_file

ADAPTER_WEIGHTS = "adapter_model.safetensors"
STATE_FILE = "trainer_state.pt"
_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class TrainingState:
    """The mutable parts of a run besides the model weights."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


def save_checkpoint(
    model: PeftModel, state: TrainingState, *, step: int, checkpoints_dir: Path, keep: int | None
) -> Path:
    """Write `step-<step>/` atomically and drop the oldest checkpoints beyond `keep`."""
    final = checkpoints_dir / f"step-{step}"
    partial = checkpoints_dir / f"step-{step}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial / "adapter"))
    torch.save(
        {
            "step": step,
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "rng": _rng_state(),
        },
        partial / STATE_FILE,
    )
    (partial / "state.json").write_text(json.dumps({"step": step}), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    if keep is not None:
        for old in list_checkpoints(checkpoints_dir)[:-keep]:
            shutil.rmtree(old)
    return final


def list_checkpoints(checkpoints_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not checkpoints_dir.is_dir():
        return []
    found = [
        (int(m.group(1)), path) for path in checkpoints_dir.iterdir() if (m := _STEP_DIR.match(path.name))
    ]
    return [path for _, path in sorted(found)]


def latest_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The newest complete checkpoint, if any."""
    checkpoints = list_checkpoints(checkpoints_dir)
    return checkpoints[-1] if checkpoints else None


def load_checkpoint(path: Path, model: PeftModel, state: TrainingState) -> int:
    """Restore adapter weights, optimizer, schedule and RNG from `path`; returns the saved step."""
    weights = load_file(str(path / "adapter" / ADAPTER_WEIGHTS), device=str(model.device))
    set_peft_model_state_dict(model, weights)
    saved = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    _restore_rng(saved["rng"])
    return int(saved["step"])


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
