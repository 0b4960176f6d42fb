"""Negative log-likelihood of the labelled (response) tokens: the training loss, eval loss and perplexity."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from forge_training_runtime.instructions import IGNORE_INDEX, Tokenised, collate


def batch_nll(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed NLL over the batch's labelled tokens, and how many there are.

    Summing (not averaging) lets callers weight every token equally across micro-batches of
    different lengths, as one big batch would.
    """
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    # Token t predicts token t+1.
    logits, labels = logits[:, :-1, :], batch["labels"][:, 1:]
    nll = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return nll, int((labels != IGNORE_INDEX).sum())


@torch.no_grad()
def mean_nll(
    model: nn.Module, items: Sequence[Tokenised], *, pad_token_id: int, batch_size: int, device: torch.device
) -> float:
    """Mean NLL per labelled token over all items (the model is left in the mode it was in)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(items), batch_size):
        batch = collate(items[start : start + batch_size], pad_token_id)
        nll, tokens = batch_nll(model, {name: tensor.to(device) for name, tensor in batch.items()})
        total, count = total + float(nll), count + tokens
    model.train(was_training)
    return total / max(count, 1)
