"""Delivery rules, no I/O: which source files make a bundle, where the bundle lives, and the generated
files (model card, inference config, manifest, checksums)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml
from forge_contracts.activities.delivery import InferenceConfig, ModelCardInfo
from forge_contracts.events.delivery import BundleFile
from forge_contracts.state_machines import MACHINES

MACHINE = MACHINES["delivery_order"]
ACTOR = "service:delivery"

README = "README.md"
INFERENCE_CONFIG = "inference_config.yaml"
MANIFEST = "manifest.json"
CHECKSUMS = "checksums.sha256"
GENERATED = frozenset({README, INFERENCE_CONFIG, MANIFEST, CHECKSUMS})

WEIGHTS_INDEX = "model.safetensors.index.json"
CONFIG_FILES = ("config.json", "generation_config.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
)
TOKENIZER_VOCABULARIES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt")
MANIFEST_SCHEMA = "forge.delivery.bundle.v1"


class MissingSourceFiles(ValueError):
    """The source model directory lacks files every bundle needs."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str
    """Empty, or ends with `/`."""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, name: str) -> str:
        return self.prefix + name


def parse_s3_uri(uri: str) -> S3Location:
    """`s3://bucket/some/prefix` -> the bucket and the prefix as a folder (`some/prefix/`)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri!r}")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    return S3Location(bucket, f"{prefix}/" if prefix else "")


def bundle_location(bucket: str, tenant: str, model_name: str, model_version: int) -> S3Location:
    """Where a model version's bundle lives: `s3://<bucket>/<tenant>/<model name>/<version>/`."""
    return S3Location(bucket, f"{tenant}/{model_name}/{model_version}/")


def select_source_files(source_uri: str, available: Mapping[str, int]) -> list[str]:
    """The files of the source directory (name -> size) that go into the bundle, sorted.

    A bundle needs `config.json`, safetensors weights (one file or an index with its shards) and a
    tokenizer (`tokenizer_config.json` plus a vocabulary: `tokenizer.json`, `tokenizer.model`,
    `vocab.json` or `vocab.txt`); optional known files (generation config, special tokens, merges, chat
    template) come along; anything else (training state, our own generated names) is left out.
    """
    if not available:
        raise MissingSourceFiles(f"no files found under {source_uri}")
    missing: list[str] = []
    if "config.json" not in available:
        missing.append("config.json")
    weights = [name for name in available if name.endswith(".safetensors")]
    if not weights:
        missing.append("model.safetensors")
    if "tokenizer_config.json" not in available:
        missing.append("tokenizer_config.json")
    if not any(name in available for name in TOKENIZER_VOCABULARIES):
        missing.append(" or ".join(TOKENIZER_VOCABULARIES))
    if missing:
        # Only what is missing: the error is shown to the caller, what else is stored there is not theirs
        # to list.
        raise MissingSourceFiles(f"source {source_uri} is missing required file(s): {', '.join(missing)}")
    known = {*CONFIG_FILES, *TOKENIZER_FILES, WEIGHTS_INDEX}
    return sorted(name for name in available if name in known or name.endswith(".safetensors"))


def check_weights_index(index: Mapping[str, Any], selected: Sequence[str], source_uri: str) -> None:
    """A sharded checkpoint's index must only name shards that are present."""
    shards = set(dict(index.get("weight_map") or {}).values())
    if missing := sorted(shards - set(selected)):
        raise MissingSourceFiles(f"source {source_uri} is missing weight shard(s): {', '.join(missing)}")


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundle_file(path: str, data: bytes) -> BundleFile:
    return BundleFile(path=path, sha256=sha256_of(data), size_bytes=len(data))


@dataclass(frozen=True)
class ModelIdentity:
    """The delivered model, as the generated files name it."""

    order_id: str
    tenant_id: str
    model_id: str
    model_name: str
    model_version: int
    model_version_id: str
    format: str


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ").strip()


def _table(header: tuple[str, str], rows: Sequence[tuple[object, object]], empty: str) -> str:
    if not rows:
        return empty
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {_cell(a)} | {_cell(b)} |" for a, b in rows]
    return "\n".join(lines)


def format_metric(value: float) -> str:
    return format(value, ".6g")


def render_model_card(
    model: ModelIdentity, card: ModelCardInfo, inference: InferenceConfig, weights: Sequence[str]
) -> str:
    """README.md: a Hugging Face style model card (EX-3) with YAML front matter."""
    front: dict[str, Any] = {
        "license": card.license,
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["forge", *card.tags],
    }
    if card.base_model:
        front["base_model"] = card.base_model
    if card.language:
        front["language"] = list(card.language)
    if card.datasets:
        front["datasets"] = [d.name for d in card.datasets]
    datasets = _table(
        ("dataset", "version / content hash"),
        [(d.name, f"{d.version or '-'} / `{d.content_hash}`") for d in card.datasets],
        "No training datasets were recorded.",
    )
    params = _table(
        ("parameter", "value"),
        sorted(card.training_params.items()),
        "No training parameters were recorded.",
    )
    metrics = _table(
        ("metric", "value"),
        [(name, format_metric(value)) for name, value in sorted(card.metrics.items())],
        "No evaluation results were recorded.",
    )
    details = _table(
        ("field", "value"),
        [
            ("model", model.model_name),
            ("version", model.model_version),
            ("model id", model.model_id),
            ("model version id", model.model_version_id),
            ("base model", card.base_model or "-"),
            ("format", f"{model.format} ({', '.join(weights)})"),
            ("framework", inference.framework),
            ("licence", card.license),
            ("delivery order", model.order_id),
        ],
        "",
    )
    do_sample = inference.temperature > 0
    sampling = f", do_sample=True, temperature={inference.temperature}" if do_sample else ""
    return f"""---
{yaml.safe_dump(front, sort_keys=False).strip()}
---

# {model.model_name} (version {model.model_version})

{card.description.strip()}

## Model details

{details}

## Intended use

{card.intended_use.strip()}

## Training data

{datasets}

## Training procedure

{params}

## Evaluation results

{metrics}

## Limitations

{card.limitations.strip()}

## How to load

Verify the files first (`sha256sum -c checksums.sha256` in this folder), then load them with
transformers; `inference_config.yaml` holds the serving settings.

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

path = "."  # this folder
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path, torch_dtype="{inference.dtype}")
inputs = tokenizer("Hello", return_tensors="pt")
output = model.generate(**inputs, max_new_tokens={inference.max_new_tokens}{sampling})
print(tokenizer.decode(output[0], skip_special_tokens=True))
```
"""


def render_inference_config(model: ModelIdentity, inference: InferenceConfig, weights: Sequence[str]) -> str:
    """inference_config.yaml: what the inference platform needs to serve the bundle."""
    config = {
        "framework": inference.framework,
        "model": {
            "name": model.model_name,
            "version": model.model_version,
            "model_id": model.model_id,
            "model_version_id": model.model_version_id,
            "path": ".",
            "format": model.format,
            "weights": list(weights),
        },
        "generation": {
            "max_new_tokens": inference.max_new_tokens,
            "temperature": inference.temperature,
            "top_p": inference.top_p,
            "do_sample": inference.temperature > 0,
        },
        "runtime": {"dtype": inference.dtype, "device": inference.device},
    }
    return yaml.safe_dump(config, sort_keys=False)


def render_manifest(model: ModelIdentity, files: Sequence[BundleFile], created_at: datetime) -> str:
    """manifest.json: the bundle's identity and every file before it (the manifest lists neither itself
    nor the checksums file, which is written after it)."""
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "order_id": model.order_id,
        "tenant_id": model.tenant_id,
        "model_id": model.model_id,
        "model_name": model.model_name,
        "model_version": model.model_version,
        "model_version_id": model.model_version_id,
        "format": model.format,
        "created_at": created_at.isoformat(),
        "files": [f.model_dump() for f in files],
    }
    return json.dumps(manifest, indent=2) + "\n"


def render_checksums(files: Sequence[BundleFile]) -> str:
    """checksums.sha256 in `sha256sum` format (`<hex>  <path>`), so `sha256sum -c` verifies the bundle."""
    return "".join(f"{f.sha256}  {f.path}\n" for f in files)
