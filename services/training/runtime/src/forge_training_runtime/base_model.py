"""The platform's local "base model": a byte-level BPE tokenizer and a tiny, randomly initialised Llama.

No model hub is reachable, so the base model a user registers and fine-tunes is built here from a text
corpus. It is saved in the standard Hugging Face layout, so everything downstream (peft, stock
`AutoModelForCausalLM`, delivery) treats it like any downloaded checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from forge_training_runtime.instructions import read_examples
from forge_training_runtime.specs import BaseModelResult
from forge_training_runtime.tokenizer_files import save_tokenizer
from forge_training_runtime.torch_setup import seed_everything

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]


def build_base_model(
    corpus_texts: Sequence[str],
    out_dir: Path,
    *,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    intermediate_size: int = 128,
    max_positions: int = 256,
    initializer_range: float | None = None,
    seed: int = 0,
) -> BaseModelResult:
    """Train a tokenizer on `corpus_texts`, initialise a tiny Llama, and save both to `out_dir`.

    The same texts and seed give byte-identical files, so a registered base model can be rebuilt.
    `initializer_range` defaults to 1/sqrt(hidden_size): Llama's 0.02 is tuned for hidden sizes in the
    thousands and would leave a 64-wide model with near-uniform logits that LoRA alone cannot sharpen.
    """
    if not any(text.strip() for text in corpus_texts):
        raise ValueError("the corpus is empty: a tokenizer needs some text to learn from")
    if hidden_size % heads:
        raise ValueError(f"hidden_size {hidden_size} must be divisible by heads {heads}")
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(corpus_texts, vocab_size)
    save_tokenizer(tokenizer, out_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        initializer_range=initializer_range or hidden_size**-0.5,
    )
    seed_everything(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = default_generation_config(tokenizer)
    model.save_pretrained(out_dir)
    return BaseModelResult(
        out_dir=out_dir,
        vocab_size=len(tokenizer),
        parameter_count=parameter_count(model),
        architecture="LlamaForCausalLM",
    )


def train_tokenizer(corpus_texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (no unknown bytes ever) that prepends BOS like Llama's does."""
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus_texts, trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        # Decoder-only models generate batches from left-padded prompts.
        padding_side="left",
    )


def default_generation_config(tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
    """Greedy decoding that stops at EOS: deterministic outputs for evaluation and demos."""
    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=64,
    )


def corpus_from_files(paths: Sequence[Path]) -> list[str]:
    """Texts for tokenizer training: formatted examples from .jsonl/.json files, lines from others."""
    texts: list[str] = []
    for path in paths:
        if path.suffix in {".jsonl", ".json"}:
            texts += [example.text for example in read_examples(path)]
        elif path.is_file():
            texts += path.read_text(encoding="utf-8").splitlines()
        else:
            raise FileNotFoundError(f"corpus file not found: {path}")
    return texts


def parameter_count(model: torch.nn.Module) -> int:
    """All parameters of a model, trainable or not."""
    return sum(parameter.numel() for parameter in model.parameters())
