"""Forge runs as OpenLineage run events (spec 2-0-2, built with the `openlineage-python` client's typed
classes, so an event that breaks the spec fails here), for Marquez, DataHub or any OpenLineage consumer.

Naming: jobs and Forge datasets live in the namespace `forge://<tenant>`; a dataset version is
`dataset-versions/<id>`, a model version `model-versions/<id>`, a base model of the hub
`base-models/<id>`; files in object storage keep their own
namespace (`s3://<bucket>`) and path, as OpenLineage's naming conventions ask. Every job carries the
`jobType` facet (BATCH, integration FORGE); a failed run the `errorMessage` facet.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import error_message_run, job_type_job
from openlineage.client.serde import Serde

from forge_registry.lineage.facts import BASE_MODEL, DATASET_VERSION, MODEL_VERSION, Ref
from forge_registry.lineage.facts import Run as ForgeRun

PRODUCER = "https://forge.dev/forge/registry"
JOB_TYPES = {
    "dataset": "DATASET_TASK",
    "training": "TRAINING_JOB",
    "registry": "MODEL_REGISTRATION",
    "delivery": "DELIVERY",
}
NAMES = {DATASET_VERSION: "dataset-versions", MODEL_VERSION: "model-versions", BASE_MODEL: "base-models"}


def namespace(tenant: str) -> str:
    return f"forge://{tenant}"


def run_id(forge_id: str) -> str:
    """A Forge id as OpenLineage's run id (a UUID): our ids are UUIDs already; others are mapped
    deterministically."""
    try:
        return str(uuid.UUID(forge_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"forge:{forge_id}"))


def _dataset(tenant: str, ref: Ref) -> tuple[str, str]:
    kind, ident = ref
    return namespace(tenant), f"{NAMES[kind]}/{ident}"


def _artifact(uri: str) -> tuple[str, str]:
    scheme, _, rest = uri.partition("://")
    bucket, _, path = rest.partition("/")
    return f"{scheme}://{bucket}", "/" + path.rstrip("/")


def run_event(run: ForgeRun, tenant: str, at: str, inputs: list[Ref]) -> dict[str, Any]:
    """The OpenLineage event of `run` (its inputs: `inputs`), as JSON."""
    facets: dict[str, Any] = {}
    if run.error:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=run.error[:2000], programmingLanguage="python"
        )
    event = RunEvent(
        eventType=RunState[run.state],
        eventTime=datetime.fromisoformat(at).isoformat(),
        run=Run(runId=run_id(run.run_id), facets=facets),
        job=Job(
            namespace=namespace(tenant),
            name=run.job,
            facets={
                "jobType": job_type_job.JobTypeJobFacet(
                    processingType="BATCH", integration="FORGE", jobType=JOB_TYPES[run.job.split(".")[0]]
                )
            },
        ),
        inputs=[InputDataset(*_dataset(tenant, ref)) for ref in inputs]
        + [InputDataset(*_artifact(uri)) for uri in run.artifacts_in],
        outputs=[OutputDataset(*_dataset(tenant, ref)) for ref in run.outputs]
        + [OutputDataset(*_artifact(uri)) for uri in run.artifacts_out],
        producer=PRODUCER,
    )
    payload: dict[str, Any] = Serde.to_dict(event)
    return payload


__all__ = ["namespace", "run_event", "run_id"]
