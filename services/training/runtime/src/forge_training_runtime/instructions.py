"""Instruction data: alpaca and sharegpt records, the prompt template, and tokenisation with masked labels.

An example is a sequence of segments; only the assistant's segments are trained on (their tokens carry
labels, everything else is -100), which is what "loss masked on the prompt" means for multi-turn data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import PreTrainedTokenizerBase

from forge_training_runtime.specs import DataFormat

IGNORE_INDEX = -100
INSTRUCTION_HEADER = "### Instruction:\n"
INPUT_HEADER = "### Input:\n"
SYSTEM_HEADER = "### System:\n"
RESPONSE_HEADER = "### Response:\n"
_USER_ROLES = {"human", "user"}
_ASSISTANT_ROLES = {"gpt", "assistant", "model"}
_SYSTEM_ROLES = {"system"}


class DataError(ValueError):
    """A data file or record that cannot be read as instruction data."""


@dataclass(frozen=True)
class Segment:
    """A piece of an example's text; `trainable` segments are the assistant's replies."""

    text: str
    trainable: bool


@dataclass(frozen=True)
class Example:
    """One instruction example as segments; the last segment is always the assistant's reply."""

    segments: tuple[Segment, ...]

    @property
    def prompt(self) -> str:
        """Everything the model is given before its final reply."""
        return "".join(segment.text for segment in self.segments[:-1])

    @property
    def reference(self) -> str:
        """The final reply the model should produce."""
        return self.segments[-1].text

    @property
    def text(self) -> str:
        """The full example as plain text (used to train the tokenizer)."""
        return "".join(segment.text for segment in self.segments)


def alpaca_prompt(instruction: str, input_text: str = "") -> str:
    """The prompt for an alpaca record; the Input section is left out when the input is empty."""
    prompt = f"{INSTRUCTION_HEADER}{instruction.strip()}\n\n"
    if input_text.strip():
        prompt += f"{INPUT_HEADER}{input_text.strip()}\n\n"
    return prompt + RESPONSE_HEADER


def example_from_alpaca(record: dict[str, Any]) -> Example:
    """An alpaca record `{"instruction", "input", "output"}` as an example."""
    instruction, output = record.get("instruction"), record.get("output")
    input_text = record.get("input") or ""
    if not isinstance(instruction, str) or not isinstance(output, str) or not isinstance(input_text, str):
        raise DataError(
            "an alpaca record needs string fields 'instruction' and 'output' (and optional 'input')"
        )
    if not output.strip():
        raise DataError("an alpaca record has an empty 'output'")
    return Example((Segment(alpaca_prompt(instruction, input_text), False), Segment(output.strip(), True)))


def example_from_sharegpt(record: dict[str, Any]) -> Example:
    """A sharegpt record `{"conversations": [{"from", "value"}, ...]}` ending with an assistant turn."""
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise DataError("a sharegpt record needs a non-empty list 'conversations'")
    segments: list[Segment] = []
    pending = ""  # prompt text accumulated since the last assistant reply
    for turn in turns:
        role, value = _turn_fields(turn)
        if role in _SYSTEM_ROLES:
            pending += f"{SYSTEM_HEADER}{value}\n\n"
        elif role in _USER_ROLES:
            pending += f"{INSTRUCTION_HEADER}{value}\n\n"
        else:
            segments += [Segment(pending + RESPONSE_HEADER, False), Segment(value, True)]
            pending = "\n\n"
    if not segments or pending != "\n\n":
        raise DataError("a sharegpt conversation must end with an assistant ('gpt') turn")
    return Example(tuple(segments))


def _turn_fields(turn: Any) -> tuple[str, str]:
    if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
        raise DataError("each sharegpt turn needs a string 'value'")
    role = str(turn.get("from", "")).lower()
    if role not in _USER_ROLES | _ASSISTANT_ROLES | _SYSTEM_ROLES:
        raise DataError(f"unknown sharegpt role {turn.get('from')!r}")
    return role, turn["value"].strip()


def example_from_record(record: Any, data_format: DataFormat = "auto") -> Example:
    """One JSON record as an example; "auto" picks sharegpt when `conversations` is present."""
    if not isinstance(record, dict):
        raise DataError("a record must be a JSON object")
    if data_format == "sharegpt" or (data_format == "auto" and "conversations" in record):
        return example_from_sharegpt(record)
    return example_from_alpaca(record)


def read_examples(path: Path, data_format: DataFormat = "auto") -> list[Example]:
    """All examples of a JSONL file (a JSON array file is accepted too); errors name the line."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        records = list(enumerate(json.loads(text), start=1))
    else:
        records = [(number, _parse_line(path, number, line)) for number, line in _lines(text)]
    examples = []
    for number, record in records:
        try:
            examples.append(example_from_record(record, data_format))
        except DataError as error:
            raise DataError(f"{path}:{number}: {error}") from None
    if not examples:
        raise DataError(f"{path} holds no records")
    return examples


def _lines(text: str) -> Iterable[tuple[int, str]]:
    return ((number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip())


def _parse_line(path: Path, number: int, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{number}: not valid JSON ({error.msg})") from None


@dataclass(frozen=True)
class Tokenised:
    """Token ids of one example and its labels (-100 where the loss must not look)."""

    input_ids: list[int]
    labels: list[int]


def tokenise_example(tokenizer: PreTrainedTokenizerBase, example: Example, max_length: int) -> Tokenised:
    """BOS, then each segment; replies end with EOS and are the only labelled tokens. Cut at max_length."""
    input_ids: list[int] = [tokenizer.bos_token_id]
    labels: list[int] = [IGNORE_INDEX]
    for segment in example.segments:
        ids = tokenizer.encode(segment.text, add_special_tokens=False)
        if segment.trainable:
            ids = [*ids, tokenizer.eos_token_id]
        input_ids += ids
        labels += ids if segment.trainable else [IGNORE_INDEX] * len(ids)
    return Tokenised(input_ids[:max_length], labels[:max_length])


def tokenise_prompt(tokenizer: PreTrainedTokenizerBase, example: Example) -> list[int]:
    """The ids a model is given to generate the final reply: the same encoding as in training."""
    ids: list[int] = [tokenizer.bos_token_id]
    for segment in example.segments[:-1]:
        ids += tokenizer.encode(segment.text, add_special_tokens=False)
        if segment.trainable:
            ids.append(tokenizer.eos_token_id)
    return ids


def collate(
    items: Sequence[Tokenised], pad_token_id: int, *, padding_side: Literal["left", "right"] = "right"
) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest item; returns input_ids, attention_mask and labels tensors."""
    width = max(len(item.input_ids) for item in items)
    ids, masks, labels = [], [], []
    for item in items:
        pad = width - len(item.input_ids)
        ids.append(_pad(item.input_ids, pad, pad_token_id, padding_side))
        masks.append(_pad([1] * len(item.input_ids), pad, 0, padding_side))
        labels.append(_pad(item.labels, pad, IGNORE_INDEX, padding_side))
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "attention_mask": torch.tensor(masks, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def _pad(values: list[int], count: int, fill: int, side: Literal["left", "right"]) -> list[int]:
    return [fill] * count + values if side == "left" else values + [fill] * count
