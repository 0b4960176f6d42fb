"""Offline evaluation: perplexity, BLEU and ROUGE in range, records kept, and fine-tuning shows."""

from __future__ import annotations

import json
import math
from pathlib import Path

from forge_training_runtime.evaluation import evaluate
from forge_training_runtime.specs import SampleDataResult

from tests.training_runtime.conftest import FineTuneRun


def test_evaluation_reports_perplexity_bleu_and_rouge(
    fine_tuned: FineTuneRun, base_model_dir: Path, splits: SampleDataResult, tmp_path: Path
) -> None:
    records_file = tmp_path / "records.jsonl"

    tuned = evaluate(
        fine_tuned.result.merged_dir, splits.test_file, max_new_tokens=8, records_file=records_file
    )
    untuned = evaluate(base_model_dir, splits.test_file, max_new_tokens=8)

    metrics = tuned.metrics
    assert 1.0 <= metrics.perplexity < math.inf
    assert 0.0 <= metrics.bleu <= 100.0
    assert all(
        0.0 <= value <= 1.0 for value in (metrics.rouge1, metrics.rouge2, metrics.rougeL, metrics.exact_match)
    )
    assert metrics.perplexity < untuned.metrics.perplexity
    test_records = [json.loads(line) for line in splits.test_file.read_text().splitlines()]
    assert metrics.records == len(tuned.records) == len(test_records)
    assert [r.reference for r in tuned.records] == [r["output"] for r in test_records]
    assert all(r.prompt.endswith("### Response:\n") for r in tuned.records)
    assert len(records_file.read_text().splitlines()) == len(test_records)


def test_fine_tuned_model_answers_the_sentiment_task(
    fine_tuned: FineTuneRun, splits: SampleDataResult
) -> None:
    sentiment = evaluate(fine_tuned.result.merged_dir, splits.validation_file, max_new_tokens=4).records
    sentiment = [r for r in sentiment if r.reference in {"positive", "negative"}]

    assert sentiment
    assert all(r.prediction in {"positive", "negative"} for r in sentiment), sentiment
