"""Request and response models of the delivery API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from forge_contracts.activities.delivery import MODEL_NAME_PATTERN, InferenceConfig, ModelCardInfo
from forge_contracts.events.base import Id, Text
from forge_contracts.events.delivery import BundleFile
from forge_kit.types import FiniteFloat, PositiveInt32
from pydantic import BaseModel, ConfigDict, Field

from forge_delivery.tables import DeliveryOrder


class ModelCard(ModelCardInfo):
    """What the generated model card (README.md) says about the model; metrics are finite JSON numbers."""

    metrics: dict[str, FiniteFloat] = Field(default_factory=dict, description="Evaluation metrics by name.")


class Inference(InferenceConfig):
    """How the inference platform should run the model (`inference_config.yaml`); JSON numbers only."""

    max_new_tokens: PositiveInt32 = Field(default=256, le=131072, description="Generation length limit.")
    temperature: FiniteFloat = Field(
        default=0.7, ge=0.0, le=5.0, description="Sampling temperature (0: greedy)."
    )
    top_p: FiniteFloat = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling.")


class CreateDeliveryOrder(BaseModel):
    """Deliver one released model version: pack its merged model directory into a bundle and publish it.

    The version is named by id; the registry says where its files are and whether it may be delivered
    (never the caller: there is no source location in the request)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "model_version_id": "01956a80-5555-7666-8777-888899990000",
                    "card": {
                        "description": "Support assistant tuned from Qwen2.5-7B.",
                        "base_model": "Qwen/Qwen2.5-7B-Instruct",
                        "datasets": [
                            {"name": "tickets", "version": "3", "content_hash": "sha256:ab12cd34ef56"}
                        ],
                        "training_params": {"learning_rate": 0.0002, "epochs": 3, "lora_rank": 16},
                        "metrics": {"rougeL": 0.41, "bleu": 0.27},
                        "license": "apache-2.0",
                        "intended_use": "Answering customer support questions.",
                        "limitations": "English only; not for legal or medical advice.",
                    },
                    "inference": {"max_new_tokens": 512, "temperature": 0.2, "dtype": "bfloat16"},
                }
            ]
        },
    )

    model_version_id: Id = Field(
        description="The model version (registry) being delivered: released, in the caller's tenant."
    )
    model_id: Id | None = Field(
        default=None, description="The model project; from the registry (when given, it must match)."
    )
    model_name: str | None = Field(
        default=None,
        pattern=MODEL_NAME_PATTERN,
        description="The bundle's model name (a path segment); default: the model project's name.",
    )
    model_version: PositiveInt32 | None = Field(
        default=None, description="The version number; from the registry (when given, it must match)."
    )
    card: ModelCard = Field(description="What the model card (README.md) says.")
    inference: Inference = Field(default_factory=Inference, description="inference_config.yaml.")
    deployment_id: Id | None = Field(default=None, description="The deployment config this order executes.")
    target: Literal["model_files"] = Field(default="model_files", description="How it is handed over.")
    format: Literal["safetensors"] = Field(default="safetensors", description="The weight format.")
    mirror_to_shared_dir: bool | None = Field(
        default=None,
        description="Mirror the bundle to the service's shared folder; default: when one is configured.",
    )


class CancelDeliveryOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Text | None = Field(default=None, description="Why.")


class Progress(BaseModel):
    """How far the current stage is: `packaging` copies and hashes, `publishing` mirrors."""

    stage: str | None
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


class DeliveryOrderView(BaseModel):
    id: str
    tenant_id: str
    state: str
    sequence: int
    model_version_id: str
    model_id: str
    model_name: str
    model_version: int
    deployment_id: str | None
    target: str
    format: str
    source_uri: str
    bundle_uri: str
    shared_path: str | None
    progress: Progress
    files: list[BundleFile]
    error: str | None
    failed_stage: str | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, order: DeliveryOrder) -> DeliveryOrderView:
        return cls(
            id=order.id,
            tenant_id=order.tenant_id,
            state=order.state,
            sequence=order.sequence,
            model_version_id=order.model_version_id,
            model_id=order.model_id,
            model_name=order.model_name,
            model_version=order.model_version,
            deployment_id=order.deployment_id,
            target=order.target,
            format=order.format,
            source_uri=order.source_uri,
            bundle_uri=order.bundle_uri,
            shared_path=order.shared_path,
            progress=Progress(
                stage=order.progress_stage,
                files_done=order.files_done,
                files_total=order.files_total,
                bytes_done=order.bytes_done,
                bytes_total=order.bytes_total,
            ),
            files=[BundleFile.model_validate(f) for f in order.files],
            error=order.error,
            failed_stage=order.failed_stage,
            created_by=order.created_by,
            created_at=order.created_at,
            updated_at=order.updated_at,
        )


class DeliveryOrderList(BaseModel):
    items: list[DeliveryOrderView]
