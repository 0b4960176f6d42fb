"""Instruction records become prompts and replies, and only reply tokens carry a training label."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from forge_training_runtime.instructions import (
    IGNORE_INDEX,
    DataError,
    read_examples,
    tokenise_example,
    tokenise_prompt,
)
from transformers import AutoTokenizer


def _labelled_text(tokenizer, labels: list[int]) -> str:
    return tokenizer.decode([label for label in labels if label != IGNORE_INDEX])


def test_alpaca_prompt_tokens_are_masked_and_the_reply_and_eos_are_labelled(
    base_model_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "alpaca.jsonl"
    data.write_text(
        json.dumps({"instruction": "Add the two numbers.", "input": "2 + 3", "output": "5"}) + "\n"
    )
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    [example] = read_examples(data)

    item = tokenise_example(tokenizer, example, max_length=256)

    assert _labelled_text(tokenizer, item.labels) == "5</s>"
    prompt_ids = tokenise_prompt(tokenizer, example)
    assert item.input_ids[: len(prompt_ids)] == prompt_ids
    assert all(label == IGNORE_INDEX for label in item.labels[: len(prompt_ids)])


def test_sharegpt_conversations_train_only_on_assistant_turns(base_model_dir: Path, tmp_path: Path) -> None:
    conversation = {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Capital of France?"},
            {"from": "gpt", "value": "Paris"},
            {"from": "human", "value": "And of Italy?"},
            {"from": "gpt", "value": "Rome"},
        ]
    }
    data = tmp_path / "sharegpt.jsonl"
    data.write_text(json.dumps(conversation) + "\n")
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    [example] = read_examples(data)

    item = tokenise_example(tokenizer, example, max_length=256)

    assert _labelled_text(tokenizer, item.labels) == "Paris</s>Rome</s>"
    assert example.reference == "Rome"
    assert "And of Italy?" in example.prompt and example.prompt.endswith("### Response:\n")


def test_a_malformed_record_is_reported_with_its_line_number(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text(
        json.dumps({"instruction": "x", "output": "y"}) + "\n" + json.dumps({"instruction": "x"}) + "\n"
    )

    with pytest.raises(DataError, match=r"bad\.jsonl:2: .*'output'"):
        read_examples(data)
