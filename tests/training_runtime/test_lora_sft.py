"""LoRA fine-tuning: the model learns, reports as it goes, saves a usable merged model and resumes exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from forge_training_runtime.instructions import alpaca_prompt
from forge_training_runtime.lora_sft import train_lora_sft
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.training_runtime.conftest import FINE_TUNE_STEPS, FineTuneRun, TrainSpecFactory


def test_lora_sft_lowers_the_training_loss(fine_tuned: FineTuneRun) -> None:
    losses = fine_tuned.metric("train_loss")

    start, end = sum(losses[:5]) / 5, sum(losses[-5:]) / 5

    assert len(losses) == FINE_TUNE_STEPS
    assert end < start - 1.0, f"train loss went from {start:.3f} to {end:.3f}"
    eval_losses = fine_tuned.metric("eval_loss")
    assert len(eval_losses) == 2 and eval_losses[-1] < start


def test_training_reports_progress_for_every_step_and_checkpoints_on_schedule(
    fine_tuned: FineTuneRun,
) -> None:
    progress = [e for e in fine_tuned.events if e["kind"] == "progress"]
    checkpoints = [e for e in fine_tuned.events if e["kind"] == "checkpoint"]

    assert [e["step"] for e in progress] == list(range(1, FINE_TUNE_STEPS + 1))
    assert all(e["total_steps"] == FINE_TUNE_STEPS and e["eta_s"] >= 0 for e in progress)
    assert progress[-1]["eta_s"] == 0 and progress[-1]["epoch"] > 1
    assert [e["step"] for e in checkpoints] == [FINE_TUNE_STEPS // 2, FINE_TUNE_STEPS]
    for event in checkpoints:
        saved = Path(event["path"])
        assert (saved / "adapter" / "adapter_model.safetensors").is_file()
        assert (saved / "trainer_state.pt").is_file()


def test_merged_model_loads_with_stock_transformers_and_generates(fine_tuned: FineTuneRun) -> None:
    merged_dir = fine_tuned.result.merged_dir
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    model = AutoModelForCausalLM.from_pretrained(merged_dir)
    prompt = alpaca_prompt("Classify the sentiment as positive or negative.", "I loved the book.")
    encoded = tokenizer(prompt, return_tensors="pt")

    output = model.generate(**encoded, max_new_tokens=4, do_sample=False)

    assert {"model.safetensors", "config.json", "tokenizer.json", "generation_config.json"} <= {
        p.name for p in merged_dir.iterdir()
    }
    assert output.shape[1] > encoded.input_ids.shape[1]
    assert isinstance(tokenizer.decode(output[0, encoded.input_ids.shape[1] :]), str)


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")  # upstream peft noise
def test_merged_model_computes_the_same_logits_as_base_plus_adapter(
    fine_tuned: FineTuneRun, base_model_dir: Path
) -> None:
    base = AutoModelForCausalLM.from_pretrained(base_model_dir)
    with_adapter = PeftModel.from_pretrained(base, fine_tuned.result.adapter_dir).eval()
    merged = AutoModelForCausalLM.from_pretrained(fine_tuned.result.merged_dir).eval()
    input_ids = torch.tensor([[1, 40, 41, 42, 43, 44]])

    with torch.no_grad():
        expected, actual = with_adapter(input_ids).logits, merged(input_ids).logits

    assert torch.allclose(expected, actual, atol=1e-4)
    untuned = AutoModelForCausalLM.from_pretrained(base_model_dir).eval()
    with torch.no_grad():
        assert not torch.allclose(untuned(input_ids).logits, actual, atol=1e-3)


class _Crash(Exception):
    pass


def _crash_after_checkpoint(step: int, events: list[dict[str, Any]]) -> Any:
    def callback(event: dict[str, Any]) -> None:
        events.append(event)
        if event["kind"] == "checkpoint" and event["step"] == step:
            raise _Crash

    return callback


def test_resuming_from_a_checkpoint_continues_at_the_saved_step(
    make_train_spec: TrainSpecFactory, tmp_path: Path
) -> None:
    # Dropout makes the run depend on the RNG, so an exact match also proves the RNG state was restored.
    overrides: dict[str, Any] = {
        "max_steps": 6,
        "batch_size": 8,
        "checkpoint_every_steps": 2,
        "lora": {"rank": 4, "alpha": 8, "dropout": 0.1},
        "validation_file": None,
    }
    interrupted = make_train_spec(tmp_path / "interrupted", **overrides)
    first_events: list[dict[str, Any]] = []
    with pytest.raises(_Crash):
        train_lora_sft(interrupted, _crash_after_checkpoint(4, first_events))

    resumed_events: list[dict[str, Any]] = []
    resumed = train_lora_sft(interrupted.model_copy(update={"resume": True}), resumed_events.append)
    uninterrupted = train_lora_sft(make_train_spec(tmp_path / "straight", **overrides))

    assert resumed.resumed_from_step == 4
    assert [e["step"] for e in resumed_events if e["kind"] == "progress"] == [5, 6]
    assert any("resumed from checkpoint step-4" in e.get("message", "") for e in resumed_events)
    resumed_weights = load_file(str(resumed.adapter_dir / "adapter_model.safetensors"))
    straight_weights = load_file(str(uninterrupted.adapter_dir / "adapter_model.safetensors"))
    assert resumed_weights.keys() == straight_weights.keys()
    for name, tensor in straight_weights.items():
        assert torch.allclose(resumed_weights[name], tensor, atol=1e-6), name
