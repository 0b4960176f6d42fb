"""Use cases of feature engineering: start a `features` task (fit a transformer on a version, or apply a
fitted one to it), run it (the task's handler, through the data runtime on Ray, scheduled like a
processing task), and read the fitted transformers.

A fit stores the runtime's joblib artifact at its content-addressed key and records the transformer (its
spec, sha256, dimensions, each step's figures) in the transaction that publishes the output version and
ends the task; applying hands the runtime a pre-signed link to that artifact and its sha256, which the
runtime checks before loading it. Transformers belong to the tenant: one fitted on a training version
applies to a test version of another dataset, never to another tenant's.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from forge_contracts.envelope import uuid7
from forge_contracts.features import FeaturesSpec, ImageEmbedding, TransformerSpec, fields_read, models_read
from forge_kit.auth import Principal
from forge_kit.errors import NotFound, Unprocessable
from sqlmodel import col, select

from forge_dataset import domain
from forge_dataset.deps import Deps
from forge_dataset.diff.domain import canonical
from forge_dataset.features.schemas import FeaturesRequest
from forge_dataset.processing.service import (
    PROCESSED,
    check_fields,
    media_inputs,
    model_files,
    output_names,
    ray_settings,
    record_inputs,
    run_and_store,
    runtime_dirs,
)
from forge_dataset.rows import dataset_row
from forge_dataset.service import published_source
from forge_dataset.statistics.service import task_source_stats, version_stats
from forge_dataset.tables import DatasetTask, FeatureTransformer
from forge_dataset.tasks import service as tasks
from forge_dataset.tasks.outputs import publish_output
from forge_dataset.tasks.runner import TaskContext, TaskResult


async def transformer(
    deps: Deps, caller: Principal, transformer_id: str, *, dataset_id: str | None = None
) -> FeatureTransformer:
    """A transformer of the caller's tenant (of `dataset_id` when given); another tenant's is a 404."""
    async with deps.db.session() as session:
        if dataset_id is not None:
            await dataset_row(session, caller, dataset_id)
        found = await session.get(FeatureTransformer, transformer_id)
    if found is None or found.tenant != caller.tenant_id or dataset_id not in (None, found.dataset_id):
        raise NotFound(f"transformer {transformer_id!r} does not exist")
    return found


async def transformers(deps: Deps, caller: Principal, dataset_id: str) -> list[FeatureTransformer]:
    async with deps.db.session() as session:
        await dataset_row(session, caller, dataset_id)
        query = (
            select(FeatureTransformer)
            .where(FeatureTransformer.tenant == caller.tenant_id, FeatureTransformer.dataset_id == dataset_id)
            .order_by(col(FeatureTransformer.created_at).desc())
        )
        return list((await session.exec(query)).all())


async def start_features(
    deps: Deps, caller: Principal, dataset_id: str, version_id: str, request: FeaturesRequest
) -> tuple[DatasetTask, bool]:
    """The features task of a published version (an identical request's while it runs or once done)."""
    await published_source(deps, caller, dataset_id, version_id, doing="has features made")
    spec = request.fit
    if request.transformer_id is not None:
        spec = TransformerSpec.model_validate((await transformer(deps, caller, request.transformer_id)).spec)
    assert spec is not None
    _, per_file, _ = await version_stats(deps, caller, dataset_id, version_id)
    if not any(f.format in PROCESSED for f, _ in per_file):
        raise Unprocessable("the version has no record files (JSONL, CSV or Parquet) to make features of")
    output_names([f for f, _ in per_file])
    fields = [name for name in fields_read(spec) if request.transformer_id is None or name != spec.label]
    check_fields(per_file, [("the transformer", fields)])
    parameters = request.model_dump(mode="json", exclude_none=True)
    return await tasks.create_task(
        deps,
        caller,
        dataset_id,
        "features",
        input_version_id=version_id,
        parameters=parameters,
        request_key=f"features:{version_id}:{canonical(parameters).decode()}",
    )


async def run_features(ctx: TaskContext) -> TaskResult:
    """The `features` task's handler."""
    deps, caller, task = ctx.deps, ctx.caller, ctx.task
    request = FeaturesRequest.model_validate(task.parameters)
    source, per_file, _ = await task_source_stats(deps, caller, task.dataset_id, task.input_version_id or "")
    fitted: FeatureTransformer | None = None
    if request.transformer_id is not None:
        fitted = await transformer(deps, caller, request.transformer_id)
    spec = request.fit or TransformerSpec.model_validate(fitted.spec if fitted else {})
    files = [f for f, _ in per_file]
    images = any(isinstance(step, ImageEmbedding) for step in spec.extract)
    media = await media_inputs(deps, files, {"image"}) if images else {}
    models = await model_files(deps, task.tenant, models_read(spec), ctx.models)
    with runtime_dirs(ctx, "features") as (work, ray_dir):
        out = work / "out"
        runtime_spec = FeaturesSpec(
            mode="apply" if fitted else "fit",
            transformer=spec,
            artifact_url=(await deps.store.presign_get([fitted.object_key], deps.processing_link_ttl_s))[0]
            if fitted
            else None,
            artifact_sha256=fitted.sha256 if fitted else None,
            inputs=await record_inputs(deps, files),
            media=media,
            models=models,
            output_dir=str(out),
            work_dir=str(work),
            ray=ray_settings(deps, request.resources, ray_dir),
            shard_bytes=deps.processing_shard_bytes,
        )
        report, outputs, stats_by_file = await run_and_store(
            ctx, "features", runtime_spec, [f for f, _ in per_file]
        )
        created: FeatureTransformer | None = None
        if fitted is None:
            artifact = out / "transformer.joblib"
            digest = await asyncio.to_thread(lambda: hashlib.sha256(artifact.read_bytes()).hexdigest())
            key = domain.blob_key(task.tenant, digest)
            await deps.store.put_file(key, artifact)
            described = report["transformer"]
            created = FeatureTransformer(
                id=uuid7(),
                tenant=task.tenant,
                dataset_id=task.dataset_id,
                fitted_on_version_id=source.id,
                task_id=task.id,
                spec=spec.model_dump(mode="json"),
                object_key=key,
                sha256=digest,
                size_bytes=artifact.stat().st_size,
                dimensions=int(described["dimensions"]),
                summary=described,
                created_by=task.created_by,
            )
    used = created or fitted
    assert used is not None

    async def record_transformer(session: Any) -> None:
        if created is not None:
            session.add(created)

    return await publish_output(
        ctx,
        outputs,
        operation="features",
        parent_version_id=source.id,
        stats_by_file=stats_by_file,
        totals={"records": int(report["records"]), "dimensions": used.dimensions},
        result={"transformer_id": used.id, "fitted": created is not None, "files": report["files"]},
        also=record_transformer,
    )
