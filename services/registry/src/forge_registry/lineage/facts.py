"""What an event of another service says about lineage (pure: no I/O): the nodes it names, the edges
between them, and the run it starts or ends (for OpenLineage).

- dataset version created: the version; parent -[the operation, or `derived`]-> version;
- dataset version published, deprecated, ...: the version's state and size;
- dataset task created / succeeded / failed: the task; input version -[input]-> task -[output]-> output;
- labeling task created: source version -[labeled_in]-> labeling project;
- training job created / succeeded / failed: the job; dataset version -[input]-> job; the hub's base
  model or a model version -[base_model]-> job;
- model version registered: training job -[produced]-> model version (without a job: each dataset
  version -[trained_on]-> it); released, delivered, ...: its state;
- delivery order created / delivered / failed: model version -[delivered_by]-> order; the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from forge_contracts.envelope import EventEnvelope

DATASET_VERSION = "dataset_version"
DATASET_TASK = "dataset_task"
LABELING_PROJECT = "labeling_project"
TRAINING_JOB = "training_job"
BASE_MODEL = "base_model"
MODEL_VERSION = "model_version"
DELIVERY_ORDER = "delivery_order"
KINDS = (
    DATASET_VERSION,
    DATASET_TASK,
    LABELING_PROJECT,
    TRAINING_JOB,
    BASE_MODEL,
    MODEL_VERSION,
    DELIVERY_ORDER,
)

Ref = tuple[str, str]
"""(kind, id)"""


@dataclass(frozen=True)
class Node:
    kind: str
    id: str
    owned: bool = True
    """The event is this node's own (or of a node that only exists through it): it names the tenant."""
    name: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> Ref:
        return (self.kind, self.id)


@dataclass(frozen=True)
class Edge:
    source: Ref
    target: Ref
    relation: str


@dataclass(frozen=True)
class Run:
    """A run of a job, for OpenLineage: which, its state, and what it read and wrote (`inputs_of`: read
    the inputs from the graph, as recorded when the run started)."""

    run_id: str
    job: str
    state: str
    """START, COMPLETE, FAIL or ABORT."""
    inputs: list[Ref] = field(default_factory=list)
    outputs: list[Ref] = field(default_factory=list)
    inputs_of: Ref | None = None
    artifacts_in: list[str] = field(default_factory=list)
    artifacts_out: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class Facts:
    tenant: str
    at: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)


def facts(event: EventEnvelope) -> Facts:
    """What `event` adds to the graph (nothing for an event that says nothing about lineage)."""
    data: dict[str, Any] = event.data
    found = Facts(tenant=event.tenantid, at=event.time.isoformat())
    parts = event.type.split(".")  # forge.<service>.<entity>.<event>.v1
    if len(parts) != 5:
        return found
    _, service, entity, happened, _ = parts
    handler = _HANDLERS.get((service, entity))
    if handler is not None:
        handler(found, happened, data)
    return found


def _state(data: dict[str, Any]) -> dict[str, Any]:
    return {"state": data["to_state"]} if isinstance(data.get("to_state"), str) else {}


def _dataset_version(out: Facts, happened: str, data: dict[str, Any]) -> None:
    version = data["version_id"]
    attributes = {"dataset_id": data["dataset_id"], **_state(data)}
    name = None
    if happened == "created":
        attributes.update(number=data.get("version"), source=data.get("source"))
        name = f"dataset {data['dataset_id']} version {data.get('version')}"
        if data.get("operation"):
            attributes["operation"] = data["operation"]
    if happened == "published":
        attributes.update(item_count=data.get("item_count"), size_bytes=data.get("size_bytes"))
    out.nodes.append(Node(DATASET_VERSION, version, name=name, attributes=attributes))
    parent = data.get("parent_version_id")
    if happened == "created" and parent:
        out.nodes.append(Node(DATASET_VERSION, parent, owned=False))
        out.edges.append(
            Edge((DATASET_VERSION, parent), (DATASET_VERSION, version), data.get("operation") or "derived")
        )


def _dataset_task(out: Facts, happened: str, data: dict[str, Any]) -> None:
    task, kind = data["task_id"], data["kind"]
    job = f"dataset.{kind}"
    out.nodes.append(
        Node(
            DATASET_TASK,
            task,
            name=f"{kind} task",
            attributes={"kind": kind, "dataset_id": data["dataset_id"], **_state(data)},
        )
    )
    if happened == "created":
        inputs = [(DATASET_VERSION, data["input_version_id"])] if data.get("input_version_id") else []
        for ref in inputs:
            out.nodes.append(Node(*ref, owned=False))
            out.edges.append(Edge(ref, (DATASET_TASK, task), "input"))
        out.runs.append(Run(task, job, "START", inputs=inputs))
    elif happened == "succeeded":
        outputs = [(DATASET_VERSION, data["output_version_id"])] if data.get("output_version_id") else []
        for ref in outputs:
            out.nodes.append(Node(*ref, owned=False))
            out.edges.append(Edge((DATASET_TASK, task), ref, "output"))
        out.runs.append(Run(task, job, "COMPLETE", outputs=outputs, inputs_of=(DATASET_TASK, task)))
    elif happened in ("failed", "cancelled"):
        state = "FAIL" if happened == "failed" else "ABORT"
        out.runs.append(Run(task, job, state, inputs_of=(DATASET_TASK, task), error=data.get("error")))


def _labeling_task(out: Facts, happened: str, data: dict[str, Any]) -> None:
    if happened != "created" or not data.get("dataset_version_id"):
        return
    project = (LABELING_PROJECT, data["project_id"])
    source = (DATASET_VERSION, data["dataset_version_id"])
    out.nodes += [Node(*project, name="labeling project"), Node(*source, owned=False)]
    out.edges.append(Edge(source, project, "labeled_in"))


def _training_job(out: Facts, happened: str, data: dict[str, Any]) -> None:
    job = (TRAINING_JOB, data["job_id"])
    attributes: dict[str, Any] = {"project_id": data["project_id"], "kind": data.get("kind"), **_state(data)}
    name = None
    if happened == "created":
        name = data.get("name")
        attributes["method"] = data.get("method")
        inputs = [(DATASET_VERSION, v) for v in data.get("dataset_version_ids", [])]
        for ref in inputs:
            out.nodes.append(Node(*ref, owned=False))
            out.edges.append(Edge(ref, job, "input"))
        if data.get("base_model_id"):
            base = (BASE_MODEL, data["base_model_id"])
            out.nodes.append(Node(*base, name="base model"))
            out.edges.append(Edge(base, job, "base_model"))
            inputs.append(base)
        if data.get("base_model_version_id"):
            tuned = (MODEL_VERSION, data["base_model_version_id"])
            out.nodes.append(Node(*tuned, owned=False))
            out.edges.append(Edge(tuned, job, "base_model"))
            inputs.append(tuned)
        out.runs.append(Run(job[1], "training.job", "START", inputs=inputs))
    elif happened == "succeeded":
        attributes["model_uri"] = data.get("model_uri")
        out.runs.append(
            Run(job[1], "training.job", "COMPLETE", inputs_of=job, artifacts_out=[str(data.get("model_uri"))])
        )
    elif happened in ("failed", "cancelled"):
        state = "FAIL" if happened == "failed" else "ABORT"
        out.runs.append(Run(job[1], "training.job", state, inputs_of=job, error=data.get("error")))
    out.nodes.append(Node(*job, name=name, attributes={k: v for k, v in attributes.items() if v is not None}))


def _model_version(out: Facts, happened: str, data: dict[str, Any]) -> None:
    version = (MODEL_VERSION, data["version_id"])
    attributes = {
        "model_id": data["model_id"],
        "model_name": data["model_name"],
        "number": data["version"],
        **_state(data),
    }
    if happened == "registered":
        attributes.update(artifact_uri=data.get("artifact_uri"), source=data.get("source"))
        if data.get("training_job_id"):
            job = (TRAINING_JOB, data["training_job_id"])
            out.nodes.append(Node(*job, owned=False))
            out.edges.append(Edge(job, version, "produced"))
        else:
            for dataset_version in data.get("dataset_version_ids", []):
                ref = (DATASET_VERSION, dataset_version)
                out.nodes.append(Node(*ref, owned=False))
                out.edges.append(Edge(ref, version, "trained_on"))
            if data.get("base_model_version_id"):
                tuned = (MODEL_VERSION, data["base_model_version_id"])
                out.nodes.append(Node(*tuned, owned=False))
                out.edges.append(Edge(tuned, version, "base_model"))
        out.runs.append(
            Run(
                f"register:{data['version_id']}",
                "registry.register",
                "COMPLETE",
                outputs=[version],
                artifacts_in=[str(data.get("artifact_uri"))],
            )
        )
    out.nodes.append(Node(*version, name=f"{data['model_name']} v{data['version']}", attributes=attributes))


def _delivery_order(out: Facts, happened: str, data: dict[str, Any]) -> None:
    order = (DELIVERY_ORDER, data["order_id"])
    model = (MODEL_VERSION, data["model_version_id"])
    attributes: dict[str, Any] = {**_state(data)}
    if data.get("bundle_uri"):
        attributes["bundle_uri"] = data["bundle_uri"]
    out.nodes.append(Node(*order, name="delivery", attributes=attributes))
    if happened == "created":
        out.nodes.append(Node(*model, owned=False))
        out.edges.append(Edge(model, order, "delivered_by"))
        out.runs.append(Run(order[1], "delivery.deliver", "START", inputs=[model]))
    elif happened == "delivered":
        out.runs.append(
            Run(
                order[1],
                "delivery.deliver",
                "COMPLETE",
                inputs=[model],
                artifacts_out=[str(data["bundle_uri"])],
            )
        )
    elif happened in ("failed", "cancelled"):
        state = "FAIL" if happened == "failed" else "ABORT"
        out.runs.append(Run(order[1], "delivery.deliver", state, inputs=[model], error=data.get("error")))


_HANDLERS = {
    ("dataset", "version"): _dataset_version,
    ("dataset", "task"): _dataset_task,
    ("labeling", "task"): _labeling_task,
    ("training", "job"): _training_job,
    ("registry", "version"): _model_version,
    ("delivery", "order"): _delivery_order,
    ("delivery", "model"): _delivery_order,
}

__all__ = ["KINDS", "Edge", "Facts", "Node", "Ref", "Run", "facts"]
