"""Saving a tokenizer in the file set every loader expects."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import PreTrainedTokenizerBase


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> None:
    """tokenizer.json + tokenizer_config.json, plus special_tokens_map.json.

    transformers 5 no longer writes special_tokens_map.json, but older loaders and serving stacks
    still read it, and the delivery hand-off (DL-4) lists the tokenizer files.
    """
    tokenizer.save_pretrained(out_dir)
    special = {
        name: getattr(tokenizer, name)
        for name in ("bos_token", "eos_token", "unk_token", "pad_token")
        if getattr(tokenizer, name) is not None
    }
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
