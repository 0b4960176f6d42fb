"""What the lineage routes answer."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class NodeView(BaseModel):
    kind: str = Field(
        description="dataset_version, dataset_task, labeling_project, training_job, base_model, "
        "model_version or delivery_order."
    )
    id: str
    distance: int = Field(
        description="Edges from the root: positive downstream (what came of it), negative upstream (what it "
        "came from)."
    )
    visible: bool = Field(
        default=True, description="False for another tenant's node (a shared dataset's version)."
    )
    name: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class EdgeView(BaseModel):
    source_kind: str
    source_id: str
    target_kind: str
    target_id: str
    relation: str = Field(
        description="input, output, derived (or the operation: split, process, ...), "
        "labeled_in, base_model, produced, trained_on, delivered_by."
    )


class GraphView(BaseModel):
    root: NodeView
    direction: Literal["upstream", "downstream", "both"]
    nodes: list[NodeView] = Field(
        description="The nodes reached (only the asked kinds, with `kind`), nearest first."
    )
    edges: list[EdgeView] = Field(description="Every edge walked.")
