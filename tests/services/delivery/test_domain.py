"""Delivery rules without I/O: which source files make a bundle, and the checksums format."""

from __future__ import annotations

import hashlib
import re

import pytest
from forge_delivery.domain import (
    MissingSourceFiles,
    bundle_file,
    check_weights_index,
    parse_s3_uri,
    render_checksums,
    select_source_files,
)

SOURCE = "s3://models/acme/bot/merged/"
COMPLETE = {
    "model.safetensors": 10,
    "config.json": 1,
    "tokenizer.json": 1,
    "tokenizer_config.json": 1,
    "optimizer.pt": 5,
    "README.md": 3,
}


def test_a_complete_directory_yields_its_known_files_only() -> None:
    assert select_source_files(SOURCE, COMPLETE) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors", "tokenizer_config.json"])
def test_a_directory_missing_a_required_file_is_refused_naming_it(missing: str) -> None:
    files = {k: v for k, v in COMPLETE.items() if k != missing}
    with pytest.raises(MissingSourceFiles, match=missing):
        select_source_files(SOURCE, files)


def test_a_tokenizer_needs_a_vocabulary() -> None:
    files = {k: v for k, v in COMPLETE.items() if k != "tokenizer.json"}
    with pytest.raises(MissingSourceFiles, match=re.escape("tokenizer.json or tokenizer.model")):
        select_source_files(SOURCE, files)
    assert "vocab.txt" in select_source_files(SOURCE, {**files, "vocab.txt": 1})


def test_an_empty_source_is_refused() -> None:
    with pytest.raises(MissingSourceFiles, match="no files found"):
        select_source_files(SOURCE, {})


def test_a_sharded_checkpoint_needs_every_shard() -> None:
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    with pytest.raises(MissingSourceFiles, match=re.escape("model-00002-of-00002.safetensors")):
        check_weights_index(index, ["model-00001-of-00002.safetensors"], SOURCE)


def test_checksums_use_the_sha256sum_format() -> None:
    file = bundle_file("config.json", b"{}")
    assert render_checksums([file]) == f"{hashlib.sha256(b'{}').hexdigest()}  config.json\n"


def test_an_s3_uri_names_a_folder() -> None:
    location = parse_s3_uri("s3://bucket/a/b")
    assert (location.bucket, location.prefix, location.key("x")) == ("bucket", "a/b/", "a/b/x")
    assert parse_s3_uri("s3://bucket").prefix == ""
