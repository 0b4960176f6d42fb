"""Events of the labeling service: labeling tasks (topic `forge.labeling.events`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from forge_contracts.events.base import Actor, EntityEvent, Id, Text, after, before, example

_TASK = {
    "tenant_id": "acme",
    "occurred_at": "2025-03-02T08:15:00Z",
    "task_id": "01955f10-4b2a-7c3d-8e4f-5a6b7c8d9e0f",
    "project_id": "01955f00-1111-7222-8333-444455556666",
}
_ANNOTATION = "01955f22-aaaa-7bbb-8ccc-dddd00001111"


class LabelingTaskEvent(EntityEvent):
    """Fields of every labeling task event; the aggregate is the task (one item to annotate)."""

    aggregate_field: ClassVar[str] = "task_id"

    task_id: Id = Field(description="The labeling task (the aggregate id, the Kafka key).")
    project_id: Id = Field(description="The labeling project it belongs to.")


class LabelingTaskCreated(LabelingTaskEvent):
    """A labeling task was created for one data item, open for assignment."""

    event_type: ClassVar[str] = "forge.labeling.task.created.v1"
    model_config = example(
        {
            **_TASK,
            "actor": "bob",
            "to_state": "open",
            "dataset_version_id": "01955b3c-7a2e-7c41-9d3f-5b8e2a1c4d60",
            "item_id": "train/000123.jpg",
            "template": "object_detection",
            "overlap": 2,
        }
    )

    to_state: Literal["open"] = after("open")
    dataset_version_id: Id = Field(description="The dataset version the item comes from.")
    item_id: str = Field(min_length=1, max_length=1024, description="The item within that version.")
    template: Literal[
        "text_classification",
        "sentiment",
        "ner",
        "qa_pair",
        "image_classification",
        "object_detection",
        "semantic_segmentation",
        "image_captioning",
        "video_captioning",
        "audio_transcription",
        "custom",
    ] = Field(description="The labeling tool the task uses.")
    overlap: int = Field(
        default=1, ge=1, description="How many annotators label the item (cross-validation)."
    )
    prelabel_model_version_id: Id | None = Field(
        default=None, description="The model that pre-labeled it, if any."
    )


class LabelingTaskAssigned(LabelingTaskEvent):
    """An open labeling task was assigned to an annotator."""

    event_type: ClassVar[str] = "forge.labeling.task.assigned.v1"
    model_config = example(
        {**_TASK, "actor": "bob", "from_state": "open", "to_state": "assigned", "assignee": "carol"}
    )

    from_state: Literal["open"] = before()
    to_state: Literal["assigned"] = after("assigned")
    assignee: Actor = Field(description="The annotator.")


class LabelingTaskUnassigned(LabelingTaskEvent):
    """An assignment was withdrawn before work started; the task is open again."""

    event_type: ClassVar[str] = "forge.labeling.task.unassigned.v1"
    model_config = example(
        {**_TASK, "actor": "bob", "from_state": "assigned", "to_state": "open", "previous_assignee": "carol"}
    )

    from_state: Literal["assigned"] = before()
    to_state: Literal["open"] = after("open")
    previous_assignee: Actor = Field(description="The annotator it was assigned to.")
    reason: Text | None = Field(default=None, description="Why.")


class LabelingTaskStarted(LabelingTaskEvent):
    """The assignee started annotating."""

    event_type: ClassVar[str] = "forge.labeling.task.started.v1"
    model_config = example(
        {**_TASK, "actor": "carol", "from_state": "assigned", "to_state": "in_progress", "assignee": "carol"}
    )

    from_state: Literal["assigned"] = before()
    to_state: Literal["in_progress"] = after("in_progress")
    assignee: Actor = Field(description="The annotator.")


class LabelingTaskSubmitted(LabelingTaskEvent):
    """The assignee submitted an annotation for review."""

    event_type: ClassVar[str] = "forge.labeling.task.submitted.v1"
    model_config = example(
        {
            **_TASK,
            "actor": "carol",
            "from_state": "in_progress",
            "to_state": "submitted",
            "assignee": "carol",
            "annotation_id": _ANNOTATION,
            "lead_time_s": 42.5,
        }
    )

    from_state: Literal["in_progress"] = before()
    to_state: Literal["submitted"] = after("submitted")
    assignee: Actor = Field(description="The annotator.")
    annotation_id: Id = Field(description="The submitted annotation.")
    lead_time_s: float | None = Field(default=None, ge=0, description="Time spent annotating.")


class LabelingTaskAccepted(LabelingTaskEvent):
    """A reviewer accepted the annotation: the task is done and its label usable for export."""

    event_type: ClassVar[str] = "forge.labeling.task.accepted.v1"
    model_config = example(
        {
            **_TASK,
            "actor": "dave",
            "from_state": "submitted",
            "to_state": "accepted",
            "reviewer": "dave",
            "annotation_id": _ANNOTATION,
            "agreement": 0.92,
        }
    )

    from_state: Literal["submitted"] = before()
    to_state: Literal["accepted"] = after("accepted")
    reviewer: Actor = Field(description="Who reviewed it.")
    annotation_id: Id = Field(description="The accepted annotation.")
    agreement: float | None = Field(
        default=None, ge=0, le=1, description="Inter-annotator agreement on the item, when overlapped."
    )


class LabelingTaskRejected(LabelingTaskEvent):
    """A reviewer rejected the annotation; the task goes back to its annotator for rework."""

    event_type: ClassVar[str] = "forge.labeling.task.rejected.v1"
    model_config = example(
        {
            **_TASK,
            "actor": "dave",
            "from_state": "submitted",
            "to_state": "rejected",
            "reviewer": "dave",
            "annotation_id": _ANNOTATION,
            "reason": "box misses the left wheel",
        }
    )

    from_state: Literal["submitted"] = before()
    to_state: Literal["rejected"] = after("rejected")
    reviewer: Actor = Field(description="Who reviewed it.")
    annotation_id: Id = Field(description="The rejected annotation.")
    reason: Text = Field(description="What to fix.")


class LabelingTaskReworkStarted(LabelingTaskEvent):
    """The annotator started reworking a rejected annotation."""

    event_type: ClassVar[str] = "forge.labeling.task.rework_started.v1"
    model_config = example(
        {**_TASK, "actor": "carol", "from_state": "rejected", "to_state": "in_progress", "assignee": "carol"}
    )

    from_state: Literal["rejected"] = before()
    to_state: Literal["in_progress"] = after("in_progress")
    assignee: Actor = Field(description="The annotator.")


class LabelingTaskSkipped(LabelingTaskEvent):
    """The annotator skipped the item (unclear, broken or out of scope)."""

    event_type: ClassVar[str] = "forge.labeling.task.skipped.v1"
    model_config = example(
        {
            **_TASK,
            "actor": "carol",
            "from_state": "in_progress",
            "to_state": "skipped",
            "assignee": "carol",
            "reason": "image is blank",
        }
    )

    from_state: Literal["assigned", "in_progress"] = before()
    to_state: Literal["skipped"] = after("skipped")
    assignee: Actor = Field(description="The annotator who skipped it.")
    reason: Text | None = Field(default=None, description="Why.")


class LabelingTaskCancelled(LabelingTaskEvent):
    """A labeling task was cancelled (e.g. its project was closed)."""

    event_type: ClassVar[str] = "forge.labeling.task.cancelled.v1"
    model_config = example(
        {**_TASK, "actor": "bob", "from_state": "open", "to_state": "cancelled", "reason": None}
    )

    from_state: Literal["open", "assigned", "in_progress", "submitted", "rejected"] = before()
    to_state: Literal["cancelled"] = after("cancelled")
    reason: Text | None = Field(default=None, description="Why.")
