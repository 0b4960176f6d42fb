"""LoRA supervised fine-tuning: a plain PyTorch loop with events, evaluation, checkpoints and resume.

A plain loop (not HF Trainer) keeps progress reporting, checkpoint contents and resume exact: the
batch order of every epoch is a function of (seed, epoch), so a resumed run skips exactly the
batches it already trained on and, with the restored RNG states, repeats the uninterrupted run.
"""

from __future__ import annotations

import math
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    get_scheduler,
)

from forge_training_runtime.base_model import default_generation_config
from forge_training_runtime.checkpoints import (
    TrainingState,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from forge_training_runtime.events import ProgressCallback, Reporter
from forge_training_runtime.instructions import Tokenised, collate, read_examples, tokenise_example
from forge_training_runtime.likelihood import batch_nll, mean_nll
from forge_training_runtime.specs import TrainResult, TrainSpec
from forge_training_runtime.tokenizer_files import save_tokenizer
from forge_training_runtime.torch_setup import configure_threads, seed_everything, select_device

_SCHEDULES = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


@dataclass(frozen=True)
class Plan:
    """How the examples map to optimizer steps."""

    examples: int
    batch_size: int
    accumulation: int
    total_steps: int

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one pass over the data (the last one may accumulate fewer batches)."""
        return math.ceil(math.ceil(self.examples / self.batch_size) / self.accumulation)

    def step_groups(self, epoch: int, seed: int) -> list[list[list[int]]]:
        """The epoch's shuffled example indices: one list of micro-batches per optimizer step."""
        order = torch.randperm(self.examples, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        micro = [order[i : i + self.batch_size] for i in range(0, self.examples, self.batch_size)]
        return [micro[i : i + self.accumulation] for i in range(0, len(micro), self.accumulation)]


@dataclass
class LossLog:
    """Loss figures reported in the result."""

    first_train_loss: float | None = None
    last_train_loss: float | None = None
    last_eval_loss: float | None = None
    last_eval_step: int | None = None


def train_lora_sft(spec: TrainSpec, progress_callback: ProgressCallback | None = None) -> TrainResult:
    """Fine-tune `spec.base_model_dir` with LoRA on `spec.train_file`; save adapter and merged model.

    Events go to `progress_callback` (see `events.Reporter`). With `spec.resume`, training continues
    from the newest checkpoint in `out_dir/checkpoints/`; without it, old checkpoints are removed.
    """
    started = time.monotonic()
    reporter = Reporter(progress_callback)
    threads = configure_threads(spec.num_threads)
    device = select_device(spec.device)
    seed_everything(spec.seed)
    tokenizer = AutoTokenizer.from_pretrained(spec.base_model_dir)
    train_items = load_items(spec.train_file, tokenizer, spec, reporter)
    validation_items = (
        load_items(spec.validation_file, tokenizer, spec, reporter) if spec.validation_file else []
    )
    model = lora_model(spec, device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    plan = make_plan(spec, len(train_items))
    state = training_state(spec, model, plan.total_steps)
    reporter.log(
        f"training {trainable} LoRA parameters on {len(train_items)} examples for {plan.total_steps} steps "
        f"on {device} ({threads} threads)"
    )
    checkpoints_dir = spec.out_dir / "checkpoints"
    start_step = prepare_start(spec, checkpoints_dir, model, state, reporter)
    losses = LossLog()
    run_loop(spec, plan, model, state, start_step, train_items, validation_items, tokenizer, reporter, losses)
    if validation_items and losses.last_eval_step != plan.total_steps:
        evaluate_step(spec, model, validation_items, tokenizer, plan.total_steps, reporter, losses)
    adapter_dir, merged_dir = save_outputs(spec, model, tokenizer, reporter)
    return TrainResult(
        out_dir=spec.out_dir,
        adapter_dir=adapter_dir,
        merged_dir=merged_dir,
        checkpoints_dir=checkpoints_dir,
        steps=plan.total_steps,
        resumed_from_step=start_step or None,
        first_train_loss=losses.first_train_loss,
        final_train_loss=losses.last_train_loss,
        final_eval_loss=losses.last_eval_loss,
        trainable_parameters=trainable,
        runtime_s=round(time.monotonic() - started, 3),
    )


def load_items(
    path: Path, tokenizer: PreTrainedTokenizerBase, spec: TrainSpec, reporter: Reporter
) -> list[Tokenised]:
    """Tokenised examples of a file; examples whose reply is cut off entirely are skipped (and logged)."""
    items = [
        tokenise_example(tokenizer, e, spec.max_seq_length) for e in read_examples(path, spec.data_format)
    ]
    kept = [item for item in items if any(label >= 0 for label in item.labels)]
    if len(kept) < len(items):
        reporter.log(
            f"{len(items) - len(kept)} examples of {path.name} skipped: prompt longer than max_seq_length",
            level="warning",
        )
    if not kept:
        raise ValueError(f"no usable examples in {path} with max_seq_length={spec.max_seq_length}")
    return kept


def lora_model(spec: TrainSpec, device: torch.device) -> PeftModel:
    """The base model (fp32) wrapped with fresh LoRA adapters on the target modules."""
    base = AutoModelForCausalLM.from_pretrained(spec.base_model_dir, dtype=torch.float32)
    config = LoraConfig(
        r=spec.lora.rank,
        lora_alpha=spec.lora.alpha,
        lora_dropout=spec.lora.dropout,
        target_modules=spec.lora.target_modules,
        modules_to_save=spec.lora.modules_to_save or None,
        bias="none",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft still calls a transformers API deprecated in v5; the warning is upstream noise.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        model = get_peft_model(base, config).to(device)
    model.train()
    return model


def make_plan(spec: TrainSpec, examples: int) -> Plan:
    """Steps from `max_steps`, or from `epochs` passes over the data."""
    plan = Plan(examples, spec.batch_size, spec.gradient_accumulation_steps, total_steps=0)
    total = spec.max_steps or spec.epochs * plan.steps_per_epoch
    return Plan(examples, spec.batch_size, spec.gradient_accumulation_steps, total_steps=total)


def training_state(spec: TrainSpec, model: PeftModel, total_steps: int) -> TrainingState:
    """AdamW over the trainable parameters and the chosen learning-rate schedule."""
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=spec.learning_rate,
        weight_decay=spec.weight_decay,
    )
    scheduler = get_scheduler(
        _SCHEDULES[spec.lr_schedule],
        optimizer=optimizer,
        num_warmup_steps=spec.warmup_steps,
        num_training_steps=total_steps,
    )
    return TrainingState(optimizer, scheduler)


def prepare_start(
    spec: TrainSpec, checkpoints_dir: Path, model: PeftModel, state: TrainingState, reporter: Reporter
) -> int:
    """The step to start from: the latest checkpoint's when resuming, else 0 with old checkpoints cleared."""
    latest = latest_checkpoint(checkpoints_dir)
    if spec.resume and latest is not None:
        step = load_checkpoint(latest, model, state)
        reporter.log(f"resumed from checkpoint {latest.name} at step {step}")
        return step
    if spec.resume:
        reporter.log("resume requested but no checkpoint found; starting from step 0", level="warning")
    elif latest is not None:
        # Stale checkpoints of an earlier run would otherwise be mistaken for this run's.
        shutil.rmtree(checkpoints_dir)
    return 0


def run_loop(
    spec: TrainSpec,
    plan: Plan,
    model: PeftModel,
    state: TrainingState,
    start_step: int,
    train_items: Sequence[Tokenised],
    validation_items: Sequence[Tokenised],
    tokenizer: PreTrainedTokenizerBase,
    reporter: Reporter,
    losses: LossLog,
) -> None:
    """Optimizer steps from `start_step` to `plan.total_steps`, with events, evaluation and checkpoints."""
    step, loop_started = start_step, time.monotonic()
    while step < plan.total_steps:
        epoch = step // plan.steps_per_epoch
        for group in plan.step_groups(epoch, spec.seed)[step % plan.steps_per_epoch :]:
            loss = optimizer_step(
                spec, model, state, [[train_items[i] for i in mb] for mb in group], tokenizer
            )
            step += 1
            losses.first_train_loss = losses.first_train_loss if losses.first_train_loss is not None else loss
            losses.last_train_loss = loss
            eta = (time.monotonic() - loop_started) / (step - start_step) * (plan.total_steps - step)
            reporter.progress(
                step=step, total_steps=plan.total_steps, epoch=step / plan.steps_per_epoch, eta_s=eta
            )
            if step % spec.log_every_steps == 0 or step == plan.total_steps:
                reporter.metric("train_loss", loss, step=step)
                reporter.metric("learning_rate", float(state.scheduler.get_last_lr()[0]), step=step)
            if spec.eval_every_steps and step % spec.eval_every_steps == 0:
                evaluate_step(spec, model, validation_items, tokenizer, step, reporter, losses)
            if spec.checkpoint_every_steps and step % spec.checkpoint_every_steps == 0:
                checkpoints_dir = spec.out_dir / "checkpoints"
                path = save_checkpoint(
                    model, state, step=step, checkpoints_dir=checkpoints_dir, keep=spec.keep_checkpoints
                )
                reporter.checkpoint(step=step, path=path)
            if step >= plan.total_steps:
                return


def optimizer_step(
    spec: TrainSpec,
    model: PeftModel,
    state: TrainingState,
    micro_batches: Sequence[Sequence[Tokenised]],
    tokenizer: PreTrainedTokenizerBase,
) -> float:
    """One update from accumulated micro-batches; returns the mean NLL per response token."""
    device = model.device
    total_tokens = sum(
        sum(1 for label in item.labels[1:] if label >= 0) for mb in micro_batches for item in mb
    )
    loss_sum = 0.0
    for micro_batch in micro_batches:
        batch = {k: v.to(device) for k, v in collate(micro_batch, tokenizer.pad_token_id).items()}
        nll, _ = batch_nll(model, batch)
        # Dividing by the whole step's token count makes accumulation equal to one large batch.
        (nll / total_tokens).backward()
        loss_sum += float(nll.detach())
    if spec.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], spec.max_grad_norm)
    state.optimizer.step()
    state.scheduler.step()
    state.optimizer.zero_grad(set_to_none=True)
    return loss_sum / total_tokens


def evaluate_step(
    spec: TrainSpec,
    model: PeftModel,
    validation_items: Sequence[Tokenised],
    tokenizer: PreTrainedTokenizerBase,
    step: int,
    reporter: Reporter,
    losses: LossLog,
) -> None:
    """Report the validation loss (mean NLL per response token) at `step`."""
    loss = mean_nll(
        model,
        validation_items,
        pad_token_id=tokenizer.pad_token_id,
        batch_size=spec.batch_size,
        device=model.device,
    )
    losses.last_eval_loss, losses.last_eval_step = loss, step
    reporter.metric("eval_loss", loss, step=step)


def save_outputs(
    spec: TrainSpec, model: PeftModel, tokenizer: PreTrainedTokenizerBase, reporter: Reporter
) -> tuple[Path, Path]:
    """Save the adapter (`adapter/`) and the merged stand-alone model (`merged/`)."""
    adapter_dir, merged_dir = spec.out_dir / "adapter", spec.out_dir / "merged"
    model.save_pretrained(str(adapter_dir))
    save_tokenizer(tokenizer, adapter_dir)
    merged: PreTrainedModel = model.merge_and_unload().to("cpu")
    merged.generation_config = default_generation_config(tokenizer)
    merged.save_pretrained(merged_dir)
    save_tokenizer(tokenizer, merged_dir)
    reporter.log(f"saved adapter to {adapter_dir} and merged model to {merged_dir}")
    return adapter_dir, merged_dir
