"""The locally built base model: a standard Hugging Face checkpoint, rebuilt identically from a seed."""

from __future__ import annotations

from pathlib import Path

from forge_training_runtime.base_model import build_base_model, corpus_from_files
from forge_training_runtime.specs import SampleDataResult
from transformers import AutoModelForCausalLM, AutoTokenizer

EXPECTED_FILES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
}


def test_building_the_base_model_twice_with_one_seed_gives_identical_files(
    splits: SampleDataResult, tmp_path: Path
) -> None:
    corpus = corpus_from_files([splits.train_file])

    first = build_base_model(corpus, tmp_path / "a", seed=3)
    build_base_model(corpus, tmp_path / "b", seed=3)

    assert {p.name for p in (tmp_path / "a").iterdir()} == EXPECTED_FILES
    for name in EXPECTED_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert first.parameter_count > 0


def test_the_base_model_loads_with_stock_transformers(base_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    model = AutoModelForCausalLM.from_pretrained(base_model_dir)

    encoded = tokenizer("### Instruction:\nReverse the word.", return_tensors="pt")

    assert encoded.input_ids[0, 0].item() == tokenizer.bos_token_id
    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tokenizer)
