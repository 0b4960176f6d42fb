"""Events of the delivery service: delivery orders and delivered models (topic `forge.delivery.events`).

`forge.delivery.model.delivered.v1` is the contract with the downstream inference platform.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from forge_contracts.events.base import EntityEvent, Id, S3Uri, Sha256, Text, after, before, example
from forge_contracts.state_machines import MODEL_DELIVERED

ModelFormat = Literal["safetensors", "pytorch", "onnx", "tensorrt", "gguf"]
Target = Literal["model_files", "inference_image", "model_repository"]

_ORDER = {
    "tenant_id": "acme",
    "occurred_at": "2025-03-05T10:00:00Z",
    "order_id": "01956c00-0000-7000-8000-0000000000d1",
    "model_version_id": "01956a80-5555-7666-8777-888899990000",
}
_BUNDLE = "s3://forge-bundles/acme/qwen-support/7/"
_FILES = [
    {
        "path": "model.safetensors",
        "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        "size_bytes": 15231233024,
    },
    {
        "path": "config.json",
        "sha256": "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9",
        "size_bytes": 663,
    },
    {
        "path": "tokenizer.json",
        "sha256": "baa5a0964d3320fbc0c6a922140453c8513ea24ab8fd0577034804a967248096",
        "size_bytes": 7031645,
    },
    {
        "path": "inference_config.yaml",
        "sha256": "4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce",
        "size_bytes": 412,
    },
    {
        "path": "README.md",
        "sha256": "4b227777d4dd1fc61c6f884f48641d02b4d121d3fd328cb08b5531fcacdabf8a",
        "size_bytes": 5120,
    },
]


# A path segment other than `.` and `..` (the regex dialect has no look-ahead).
_SEGMENT = r"([^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+)"


class BundleFile(BaseModel):
    """One file of a model bundle, with what a consumer needs to verify it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    path: str = Field(
        min_length=1,
        max_length=1024,
        pattern=rf"^{_SEGMENT}(/{_SEGMENT})*$",
        description="Path relative to the bundle root (no leading `/`, no `..`).",
    )
    sha256: Sha256 = Field(description="The file's SHA-256.")
    size_bytes: int = Field(ge=0, description="The file's size.")


class DeliveryOrderEvent(EntityEvent):
    """Fields of every delivery order event; the aggregate is the order."""

    aggregate_field: ClassVar[str] = "order_id"

    order_id: Id = Field(description="The delivery order (the aggregate id, the Kafka key).")
    model_version_id: Id = Field(description="The model version being delivered.")


class DeliveryOrderCreated(DeliveryOrderEvent):
    """A delivery order was created: one execution of a deployment config for a released model version."""

    event_type: ClassVar[str] = "forge.delivery.order.created.v1"
    model_config = example(
        {
            **_ORDER,
            "actor": "alice",
            "to_state": "created",
            "deployment_id": "01956bf0-0000-7000-8000-0000000000c1",
            "target": "model_files",
            "format": "safetensors",
            "quantization": "none",
        }
    )

    to_state: Literal["created"] = after("created")
    deployment_id: Id | None = Field(default=None, description="The deployment config it executes.")
    target: Target = Field(description="How the inference platform receives it (files, image or repository).")
    format: ModelFormat = Field(description="The weight format to deliver (converted if needed).")
    quantization: Literal["none", "fp16", "int8", "int4"] = Field(default="none", description="Quantisation.")


class DeliveryOrderPackagingStarted(DeliveryOrderEvent):
    """Packaging started: conversion, quantisation, model card and checksums."""

    event_type: ClassVar[str] = "forge.delivery.order.packaging_started.v1"
    model_config = example({**_ORDER, "from_state": "created", "to_state": "packaging"})

    from_state: Literal["created"] = before()
    to_state: Literal["packaging"] = after("packaging")


class DeliveryOrderPackaged(DeliveryOrderEvent):
    """The bundle is built and checksummed in object storage."""

    event_type: ClassVar[str] = "forge.delivery.order.packaged.v1"
    model_config = example(
        {**_ORDER, "from_state": "packaging", "to_state": "packaged", "bundle_uri": _BUNDLE, "files": _FILES}
    )

    from_state: Literal["packaging"] = before()
    to_state: Literal["packaged"] = after("packaged")
    bundle_uri: S3Uri = Field(description="The bundle's location.")
    files: list[BundleFile] = Field(min_length=1, description="Every file of the bundle.")


class DeliveryOrderPublishingStarted(DeliveryOrderEvent):
    """Publishing started: copy to shared storage, push an image or register in a model repository."""

    event_type: ClassVar[str] = "forge.delivery.order.publishing_started.v1"
    model_config = example(
        {**_ORDER, "from_state": "packaged", "to_state": "publishing", "target": "model_files"}
    )

    from_state: Literal["packaged"] = before()
    to_state: Literal["publishing"] = after("publishing")
    target: Target = Field(description="Where it is being published.")


class ModelDelivered(DeliveryOrderEvent):
    """A model is delivered and ready for the inference platform to load: verify every file's checksum first.

    This is the contract with the downstream inference platform.
    """

    event_type: ClassVar[str] = MODEL_DELIVERED
    model_config = example(
        {
            **_ORDER,
            "actor": "service:delivery",
            "from_state": "publishing",
            "to_state": "delivered",
            "model_id": "01956a70-0000-7000-8000-0000000000b1",
            "model_name": "qwen-support",
            "model_version": 7,
            "format": "safetensors",
            "target": "model_files",
            "bundle_uri": _BUNDLE,
            "files": _FILES,
            "image_ref": None,
        }
    )

    from_state: Literal["publishing"] = before()
    to_state: Literal["delivered"] = after("delivered")
    model_id: Id = Field(description="The model (project).")
    model_name: str = Field(min_length=1, max_length=200, description="The model's name.")
    model_version: int = Field(ge=1, description="The model version number.")
    format: ModelFormat = Field(description="The weight format.")
    target: Target = Field(description="How it was delivered.")
    bundle_uri: S3Uri = Field(
        description="The bundle's location (weights, config, tokenizer, model card, ...)."
    )
    files: list[BundleFile] = Field(
        min_length=1, description="Every file of the bundle with its SHA-256 and size."
    )
    image_ref: str | None = Field(
        default=None,
        max_length=512,
        description="The inference image (OCI reference with digest), if one was built.",
    )


class DeliveryOrderFailed(DeliveryOrderEvent):
    """A delivery order failed; nothing was handed to the inference platform."""

    event_type: ClassVar[str] = "forge.delivery.order.failed.v1"
    model_config = example(
        {
            **_ORDER,
            "from_state": "packaging",
            "to_state": "failed",
            "error": "ONNX export failed: unsupported operator",
            "stage": "packaging",
        }
    )

    from_state: Literal["created", "packaging", "packaged", "publishing"] = before()
    to_state: Literal["failed"] = after("failed")
    error: Text = Field(description="What went wrong, for the user.")
    stage: Literal["created", "packaging", "packaged", "publishing"] = Field(description="Where it failed.")


class DeliveryOrderCancelled(DeliveryOrderEvent):
    """A delivery order was cancelled."""

    event_type: ClassVar[str] = "forge.delivery.order.cancelled.v1"
    model_config = example({**_ORDER, "actor": "alice", "from_state": "created", "to_state": "cancelled"})

    from_state: Literal["created", "packaging", "packaged", "publishing"] = before()
    to_state: Literal["cancelled"] = after("cancelled")
    reason: Text | None = Field(default=None, description="Why.")
