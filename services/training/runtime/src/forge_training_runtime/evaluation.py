"""Offline evaluation on a test split: perplexity on the references, and generations scored with
BLEU (sacrebleu), ROUGE-1/2/L F1 (rouge-score) and exact match. Every record is kept (EV-5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import sacrebleu
import torch
from rouge_score import rouge_scorer
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from forge_training_runtime.instructions import (
    Example,
    Tokenised,
    read_examples,
    tokenise_example,
    tokenise_prompt,
)
from forge_training_runtime.likelihood import mean_nll
from forge_training_runtime.specs import (
    DataFormat,
    DeviceChoice,
    EvaluationMetrics,
    EvaluationRecord,
    EvaluationResult,
)
from forge_training_runtime.torch_setup import configure_threads, select_device

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def evaluate(
    model_dir: Path,
    test_file: Path,
    *,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    max_seq_length: int = 256,
    data_format: DataFormat = "auto",
    max_records: int | None = None,
    records_file: Path | None = None,
    device: DeviceChoice = "auto",
    num_threads: int | None = None,
) -> EvaluationResult:
    """Score the model saved in `model_dir` (a full model, e.g. `merged/`) on `test_file`.

    Perplexity is exp(mean NLL per reference token) given the prompt; predictions are greedy.
    """
    configure_threads(num_threads)
    torch_device = select_device(device)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(torch_device).eval()
    examples = read_examples(test_file, data_format)[:max_records]
    items = [tokenise_example(tokenizer, example, max_seq_length) for example in examples]
    nll = mean_nll(
        model, _scored(items), pad_token_id=tokenizer.pad_token_id, batch_size=batch_size, device=torch_device
    )
    predictions = generate_replies(
        model, tokenizer, examples, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    records = [
        EvaluationRecord(prompt=example.prompt, reference=example.reference, prediction=prediction)
        for example, prediction in zip(examples, predictions, strict=True)
    ]
    if records_file is not None:
        records_file.parent.mkdir(parents=True, exist_ok=True)
        records_file.write_text(
            "".join(record.model_dump_json() + "\n" for record in records), encoding="utf-8"
        )
    return EvaluationResult(
        model_dir=model_dir, test_file=test_file, metrics=score(records, nll), records=records
    )


def _scored(items: Sequence[Tokenised]) -> list[Tokenised]:
    # An example whose reference was cut off by max_seq_length has nothing to score.
    return [item for item in items if any(label >= 0 for label in item.labels)]


@torch.no_grad()
def generate_replies(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    *,
    max_new_tokens: int,
    batch_size: int,
) -> list[str]:
    """Greedy replies to each example's prompt, encoded exactly as in training, batched left-padded."""
    # Keep the prompt's end when it is too long: the model must see the final "### Response:" header.
    room = max(1, model.config.max_position_embeddings - max_new_tokens)
    prompts = [tokenise_prompt(tokenizer, example)[-room:] for example in examples]
    replies: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        width = max(len(ids) for ids in batch)
        input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(ids)) + ids for ids in batch])
        attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch])
        output = model.generate(
            input_ids=input_ids.to(model.device),
            attention_mask=attention_mask.to(model.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = output[:, width:]
        replies += [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return replies


def score(records: Sequence[EvaluationRecord], mean_token_nll: float) -> EvaluationMetrics:
    """Corpus BLEU, mean ROUGE F1 and exact match of the predictions, plus perplexity."""
    predictions = [record.prediction for record in records]
    references = [record.reference for record in records]
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    rouge = {name: 0.0 for name in ROUGE_TYPES}
    for prediction, reference in zip(predictions, references, strict=True):
        scores = scorer.score(reference, prediction)
        for name in ROUGE_TYPES:
            rouge[name] += scores[name].fmeasure / len(records)
    exact = sum(p == r for p, r in zip(predictions, references, strict=True)) / len(records)
    return EvaluationMetrics(
        perplexity=math.exp(min(mean_token_nll, 700.0)),  # exp overflows a float past ~709
        mean_nll=mean_token_nll,
        bleu=sacrebleu.corpus_bleu(predictions, [references]).score,
        rouge1=rouge["rouge1"],
        rouge2=rouge["rouge2"],
        rougeL=rouge["rougeL"],
        exact_match=exact,
        records=len(records),
    )
