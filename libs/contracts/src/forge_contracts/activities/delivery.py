"""Activities of the delivery service (task queue `forge-delivery`): deliver a model version as a bundle.

A workflow (training's train → evaluate → register → deliver chain) calls

    await workflow.execute_activity(
        DELIVER_MODEL, DeliverModel(...), task_queue=TASK_QUEUE, result_type=DeliveryResult,
        start_to_close_timeout=..., heartbeat_timeout=...,
    )

The activity is idempotent by `(model_version_id, request_key)`; `request_key` defaults to the calling
workflow's id, so a retry (or a replayed workflow) gets the same order and bundle instead of a second
packing. It heartbeats with packing progress. It asks the registry first: the version must exist in the
tenant and be released (else a non-retryable `ApplicationError` of type `NotFound` or `NotDeliverable`),
and the bundle is packed from the version's artifact as the registry has it. A delivery that fails (a
source file is missing, ...) raises a non-retryable `ApplicationError` of type `DeliveryFailed` whose
message is the order's error.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from forge_contracts.events.base import Actor, Id, S3Uri, TenantId, Text
from forge_contracts.events.delivery import BundleFile

TASK_QUEUE = "forge-delivery"
DELIVER_MODEL = "deliver_model"
DELIVERY_FAILED = "DeliveryFailed"
"""The `ApplicationError.type` raised when the order ends failed or cancelled."""

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
"""A model name usable as one path segment of the bundle location."""

ParamValue = str | int | float | bool


class DatasetRef(BaseModel):
    """A dataset version the model was trained on, as named in the model card."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="The dataset's name.")
    version: str | None = Field(default=None, max_length=100, description="The dataset version.")
    content_hash: str = Field(
        min_length=8,
        max_length=200,
        pattern=r"^[A-Za-z0-9:_-]+$",
        description="The version's content hash (e.g. `sha256:...` of its manifest).",
    )
    uri: str | None = Field(default=None, max_length=1024, description="Where the version lives.")


class ModelCardInfo(BaseModel):
    """What the generated model card (README.md) says about the model (EX-3)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: Text = Field(description="What the model is and does.")
    base_model: str | None = Field(
        default=None, max_length=200, description="The base model it was tuned from."
    )
    datasets: list[DatasetRef] = Field(
        default_factory=list, description="Training data, with content hashes."
    )
    training_params: dict[str, ParamValue] = Field(
        default_factory=dict, description="Training hyper-parameters (learning rate, epochs, LoRA rank, ...)."
    )
    metrics: dict[str, float] = Field(default_factory=dict, description="Evaluation metrics by name.")
    license: str = Field(
        default="other", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9.+-]+$", description="SPDX id."
    )
    intended_use: Text = Field(description="What the model is meant for.")
    limitations: Text = Field(description="Known limitations, biases and out-of-scope uses.")
    language: list[str] = Field(default_factory=list, max_length=50, description="Languages (ISO 639-1).")
    tags: list[str] = Field(default_factory=list, max_length=50, description="Free tags.")


class InferenceConfig(BaseModel):
    """How the inference platform should run the model: written to `inference_config.yaml`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    framework: Literal["transformers"] = Field(default="transformers", description="The serving framework.")
    max_new_tokens: int = Field(default=256, ge=1, le=131072, description="Generation length limit.")
    temperature: float = Field(default=0.7, ge=0.0, le=5.0, description="Sampling temperature (0: greedy).")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="auto", description="Weights dtype."
    )
    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|mps|cuda(:[0-9]+)?|npu(:[0-9]+)?)$",
        description="`auto`, `cpu`, `cuda[:n]`, `npu[:n]` or `mps`.",
    )


class DeliverModel(BaseModel):
    """Input of `deliver_model`: one model version to pack and hand to the inference platform."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: TenantId
    actor: Actor | None = None
    model_version_id: Id
    model_id: Id
    model_name: str = Field(pattern=MODEL_NAME_PATTERN)
    model_version: int = Field(ge=1)
    source_uri: S3Uri | None = Field(
        default=None,
        description=(
            "Deprecated and ignored: the bundle's source is the version's artifact as the registry has it "
            "(`artifact_uri`), never a location the caller names."
        ),
    )
    card: ModelCardInfo
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    deployment_id: Id | None = None
    mirror_to_shared_dir: bool | None = Field(
        default=None, description="Mirror to the shared folder: None = when the service has one configured."
    )
    request_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Idempotency key with the model version id; default: the calling workflow's id.",
    )


class DeliveryResult(BaseModel):
    """Output of `deliver_model`: the delivered bundle."""

    model_config = ConfigDict(frozen=True)

    order_id: Id
    state: Literal["delivered"]
    bundle_uri: S3Uri
    manifest_uri: S3Uri
    checksums_uri: S3Uri
    files: list[BundleFile]
    shared_path: str | None = None


__all__ = [
    "DELIVERY_FAILED",
    "DELIVER_MODEL",
    "MODEL_NAME_PATTERN",
    "TASK_QUEUE",
    "DatasetRef",
    "DeliverModel",
    "DeliveryResult",
    "InferenceConfig",
    "ModelCardInfo",
]
