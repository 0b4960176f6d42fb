"""Specs (inputs) and results (outputs) of the runtime's commands.

A spec is the JSON document given to `python -m forge_training_runtime <command> --spec spec.json`.
Unknown fields are rejected so a misspelt hyper-parameter fails loudly instead of being ignored.
All paths are local: the training service downloads inputs and uploads outputs around the process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DataFormat = Literal["auto", "alpaca", "sharegpt"]
DeviceChoice = Literal["auto", "cpu", "cuda"]
ScheduleName = Literal["cosine", "linear", "constant"]


class Spec(BaseModel):
    """Base of all specs: strict about unknown fields."""

    model_config = ConfigDict(extra="forbid")


class BuildBaseSpec(Spec):
    """`build-base`: train a tokenizer on the corpus files and initialise a tiny Llama in `out_dir`.

    Corpus files ending in .jsonl/.json are read as instruction data (alpaca or sharegpt) and their
    formatted text is used; any other file contributes its lines.
    """

    corpus_files: list[Path] = Field(min_length=1)
    out_dir: Path
    vocab_size: int = Field(1024, ge=300, le=65536)
    hidden_size: int = Field(64, ge=8)
    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    intermediate_size: int = Field(128, ge=8)
    max_positions: int = Field(256, ge=16)
    initializer_range: float | None = Field(None, gt=0, description="Defaults to 1/sqrt(hidden_size).")
    seed: int = 0


class LoraSpec(Spec):
    """LoRA adapter settings (FT-11)."""

    rank: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)
    # Modules trained in full next to the adapters (e.g. "lm_head"); merged like the adapters.
    modules_to_save: list[str] = Field(default_factory=list)


class TrainSpec(Spec):
    """`train`: LoRA supervised fine-tuning of `base_model_dir` on `train_file`.

    One step is one optimizer update (`batch_size * gradient_accumulation_steps` examples).
    `max_steps`, when set, wins over `epochs`. Outputs land in `out_dir`: `checkpoints/step-N/`,
    `adapter/` and `merged/` (a plain model loadable with stock transformers).
    """

    base_model_dir: Path
    train_file: Path
    validation_file: Path | None = None
    out_dir: Path
    data_format: DataFormat = "auto"
    lora: LoraSpec = Field(default_factory=LoraSpec)
    learning_rate: float = Field(1e-3, gt=0)
    lr_schedule: ScheduleName = "cosine"
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_seq_length: int = Field(256, ge=8)
    seed: int = 0
    log_every_steps: int = Field(1, ge=1)
    eval_every_steps: int | None = Field(None, ge=1)
    checkpoint_every_steps: int | None = Field(None, ge=1)
    keep_checkpoints: int | None = Field(None, ge=1, description="Keep only the newest N checkpoints.")
    resume: bool = False
    device: DeviceChoice = "auto"
    num_threads: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _eval_needs_validation_file(self) -> TrainSpec:
        if self.eval_every_steps and self.validation_file is None:
            raise ValueError("eval_every_steps needs a validation_file")
        return self


class EvaluateSpec(Spec):
    """`evaluate`: perplexity, BLEU and ROUGE of the model in `model_dir` on `test_file`.

    `records_file`, when set, also receives the prompt/reference/prediction records as JSONL.
    """

    model_dir: Path
    test_file: Path
    data_format: DataFormat = "auto"
    max_new_tokens: int = Field(32, ge=1)
    batch_size: int = Field(16, ge=1)
    max_seq_length: int = Field(256, ge=8)
    max_records: int | None = Field(None, ge=1)
    records_file: Path | None = None
    device: DeviceChoice = "auto"
    num_threads: int | None = Field(None, ge=1)


class SampleDataSpec(Spec):
    """`sample-data`: write the shipped sample instructions to `out_dir` as train/validation/test JSONL."""

    out_dir: Path
    validation_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.1, ge=0, lt=1)
    seed: int = 0


class BaseModelResult(BaseModel):
    """What `build-base` produced."""

    out_dir: Path
    vocab_size: int
    parameter_count: int
    architecture: str


class TrainResult(BaseModel):
    """What `train` produced: where the artefacts are and how the loss went."""

    out_dir: Path
    adapter_dir: Path
    merged_dir: Path
    checkpoints_dir: Path
    steps: int
    resumed_from_step: int | None
    first_train_loss: float | None
    final_train_loss: float | None
    final_eval_loss: float | None
    trainable_parameters: int
    runtime_s: float


class EvaluationRecord(BaseModel):
    """One test example as the model saw and answered it (EV-5 keeps actual inputs and outputs)."""

    prompt: str
    reference: str
    prediction: str


class EvaluationMetrics(BaseModel):
    """Corpus-level scores. BLEU is sacrebleu's 0-100 scale; ROUGE F1 and exact match are 0-1."""

    perplexity: float
    mean_nll: float
    bleu: float
    rouge1: float
    rouge2: float
    rougeL: float
    exact_match: float
    records: int


class EvaluationResult(BaseModel):
    """Metrics plus every record."""

    model_dir: Path
    test_file: Path
    metrics: EvaluationMetrics
    records: list[EvaluationRecord]


class SampleDataResult(BaseModel):
    """Where `sample-data` wrote the splits and how many records each holds."""

    train_file: Path
    validation_file: Path
    test_file: Path
    counts: dict[str, int]
