"""`ModelChainWorkflow`: dataset -> allocation -> training -> evaluation -> registration -> release gate ->
delivery, each step an activity on the owning service's task queue (the training job itself a child
workflow). Orchestration only: this module imports nothing heavy, since Temporal's sandbox re-imports it.

The gate: a version whose evaluation failed is not released; the chain waits (durably) for an
`approve_release` signal carrying an approver and a reason, which the registry records as an audited
override, or stops at `blocked` when the approval does not come in time. Nothing is delivered before.
The `stage` query tells where the chain is and what it has produced (also visible in the Temporal UI).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from forge_contracts.activities import chain, dataset, delivery, registry, scheduler, training

_QUICK = {
    "start_to_close_timeout": timedelta(seconds=60),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=20)
    ),
}
_NAMES_INPUTS = "chain-names-its-inputs"
"""`workflow.patched` id: the chain's training job names its dataset, its evaluation the dataset version
and the gate's thresholds."""
_LONG_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=30), maximum_attempts=3
)


@workflow.defn(name=chain.WORKFLOW)
class ModelChainWorkflow:
    def __init__(self) -> None:
        self._status = chain.ChainStatus(stage="resolving_dataset")
        self._approval: chain.Approval | None = None

    @workflow.query(name=chain.STAGE)
    def stage(self) -> chain.ChainStatus:
        return self._status

    @workflow.signal(name=chain.CANCEL_REQUESTED)
    def cancel_requested(self, cancellation: chain.Cancellation) -> None:
        self._set(cancelled_by=cancellation.cancelled_by, cancel_reason=cancellation.reason)

    @workflow.signal(name=chain.APPROVE_RELEASE)
    def approve_release(self, approval: chain.Approval) -> None:
        self._approval = approval

    def _set(self, **changes: Any) -> None:
        stage = changes.get("stage")
        if stage is not None and (not self._status.stages or stage != self._status.stage):
            changes["stages"] = [*self._status.stages, chain.StageMark(stage=stage, at=workflow.now())]
        self._status = self._status.model_copy(update=changes)

    @workflow.run
    async def run(self, request: chain.ChainRequest) -> chain.ChainStatus:
        self._set(stage="resolving_dataset")
        try:
            return await self._run(request)
        except BaseException as error:
            # Cancelled (POST /chains/{id}/cancel or the Temporal UI): the training child is cancelled
            # with it and the allocation given back on the way out; the workflow ends CANCELLED.
            if is_cancelled_exception(error):
                self._set(stage="cancelled")
            elif isinstance(error, Exception):
                cause = getattr(error, "cause", None) or error
                self._set(stage="failed", error=str(cause)[:2000])
            raise

    async def _run(self, request: chain.ChainRequest) -> chain.ChainStatus:
        key = workflow.info().workflow_id
        resolved = await workflow.execute_activity(
            dataset.RESOLVE_VERSION,
            dataset.DatasetVersionRef(
                tenant_id=request.tenant_id,
                dataset_id=request.dataset_id,
                version_id=request.dataset_version_id,
            ),
            task_queue=dataset.TASK_QUEUE,
            result_type=dataset.ResolvedVersion,
            **_QUICK,
        )
        files = {f.name: f.object_key for f in resolved.files}
        missing = [name for name in ("train.jsonl", "test.jsonl") if name not in files]
        if missing:
            raise ApplicationError(
                f"dataset version {resolved.version_id} has no {', '.join(missing)}; split it "
                "into train/validation/test first",
                non_retryable=True,
            )

        self._set(stage="allocating")
        # Chains started since: the job names its dataset, and the evaluation its dataset version and the
        # gate (so the evaluation's own verdict is the gate's); replays of older chains keep the old calls.
        names_inputs = workflow.patched(_NAMES_INPUTS)
        job = await workflow.execute_activity(
            chain.CREATE_CHAIN_JOB,
            chain.CreateChainJob(
                request_key=key,
                tenant_id=request.tenant_id,
                actor=request.actor,
                model_project_id=request.model_project_id,
                base_model_uri=request.base_model_uri,
                base_model_id=request.base_model_id,
                dataset_id=request.dataset_id if names_inputs else None,
                dataset_version_id=request.dataset_version_id,
                bucket=resolved.bucket,
                train_key=files["train.jsonl"],
                validation_key=files.get("validation.jsonl"),
                training=request.training,
            ),
            result_type=training.JobRef,
            **_QUICK,
        )
        grant = await workflow.execute_activity(
            scheduler.REQUEST_ALLOCATION,
            scheduler.AllocationRequest(
                request_key=f"{key}:train",
                tenant_id=request.tenant_id,
                project_id=request.scheduler_project_id,
                per_worker=scheduler.WorkerResources(
                    cpu_millis=request.cpu_millis, memory_bytes=request.memory_bytes
                ),
                workload_kind="training_job",
                workload_id=job.job_id,
                actor="service:training",
                wait_for_admission_s=600,
            ),
            task_queue=scheduler.TASK_QUEUE,
            result_type=scheduler.AllocationGrant,
            start_to_close_timeout=timedelta(seconds=900),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=_QUICK["retry_policy"],
        )
        if not grant.admitted:
            raise ApplicationError(
                f"the scheduler did not admit the training run: {grant.rejection_reason or grant.state}",
                non_retryable=True,
            )

        self._set(stage="training", training_job_id=job.job_id, allocation_id=grant.allocation_id)
        outcome = await self._train(request, job, grant.allocation_id)
        if outcome.state != "succeeded" or not outcome.model_uri:
            raise ApplicationError(
                f"training {outcome.state}: {outcome.error or 'no model produced'}", non_retryable=True
            )

        self._set(stage="evaluating", model_uri=outcome.model_uri)
        evaluation = await workflow.execute_activity(
            training.RUN_EVALUATION,
            training.EvaluationRequest(
                tenant_id=request.tenant_id,
                request_key=f"{key}:evaluate",
                model_uri=outcome.model_uri,
                test_bucket=resolved.bucket,
                test_key=files["test.jsonl"],
                max_records=request.eval_max_records,
                max_new_tokens=request.eval_max_new_tokens,
                training_job_id=job.job_id,
                dataset_version_id=resolved.version_id if names_inputs else None,
                thresholds=request.gate if names_inputs else None,
            ),
            result_type=training.EvaluationResult,
            start_to_close_timeout=timedelta(hours=6),
            heartbeat_timeout=timedelta(seconds=120),
            retry_policy=_LONG_RETRY,
        )

        self._set(
            stage="registering", evaluation_job_id=evaluation.evaluation_job_id, metrics=evaluation.metrics
        )
        version = await workflow.execute_activity(
            registry.REGISTER_MODEL_VERSION,
            registry.RegisterVersion(
                tenant_id=request.tenant_id,
                project_id=request.model_project_id,
                training_job_id=job.job_id,
                artifact_uri=outcome.model_uri,
                base_model_id=request.base_model_id,
                dataset_versions=[
                    registry.DatasetVersionRef(id=resolved.version_id, content_hash=resolved.manifest_sha256)
                ],
                hyperparameters=request.training.model_dump(),
                metrics=outcome.metrics,
                actor=request.actor,
            ),
            task_queue=registry.TASK_QUEUE,
            result_type=registry.RegisteredVersion,
            **_QUICK,
        )

        self._set(stage="gating", model_version_id=version.version_id)
        decision = await workflow.execute_activity(
            registry.RECORD_EVALUATION,
            registry.EvaluationOutcome(
                tenant_id=request.tenant_id,
                version_id=version.version_id,
                evaluation_id=evaluation.evaluation_job_id,
                metrics=evaluation.metrics,
                report_uri=evaluation.report_uri,
                thresholds=request.gate,
                actor=request.actor,
            ),
            task_queue=registry.TASK_QUEUE,
            result_type=registry.GateDecision,
            **_QUICK,
        )
        self._set(gate_passed=decision.passed, failed_checks=list(decision.failed_checks))
        if not await self._release(request, version.version_id, decision.may_release):
            return self._status

        self._set(stage="delivering")
        delivered = await workflow.execute_activity(
            delivery.DELIVER_MODEL,
            delivery.DeliverModel(
                tenant_id=request.tenant_id,
                actor=request.actor,
                model_version_id=version.version_id,
                model_id=request.model_project_id,
                model_name=request.model_name,
                model_version=version.version,
                source_uri=outcome.model_uri,
                card=request.card.model_copy(
                    update={"metrics": {**request.card.metrics, **evaluation.metrics}}
                ),
                request_key=f"{key}:deliver",
            ),
            task_queue=delivery.TASK_QUEUE,
            result_type=delivery.DeliveryResult,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(seconds=120),
            retry_policy=_LONG_RETRY,
        )
        await workflow.execute_activity(
            registry.MARK_DELIVERED,
            registry.MarkDelivered(
                tenant_id=request.tenant_id,
                version_id=version.version_id,
                delivery_order_id=delivered.order_id,
                bundle_uri=delivered.bundle_uri,
                actor=request.actor,
            ),
            task_queue=registry.TASK_QUEUE,
            result_type=registry.DeliveredVersion,
            **_QUICK,
        )
        self._set(stage="delivered", delivery_order_id=delivered.order_id, bundle_uri=delivered.bundle_uri)
        return self._status

    async def _train(
        self, request: chain.ChainRequest, job: training.JobRef, allocation_id: str
    ) -> training.TrainingOutcome:
        """The training job as a child workflow; the allocation is given back however it ends."""
        try:
            return await workflow.execute_child_workflow(
                training.WORKFLOW,
                training.TrainingJobInput(
                    tenant_id=request.tenant_id, job_id=job.job_id, allocation_id=allocation_id
                ),
                id=training.workflow_id(job.job_id),
                result_type=training.TrainingOutcome,
            )
        finally:
            await workflow.execute_activity(
                scheduler.RELEASE_ALLOCATION,
                scheduler.ReleaseRequest(
                    tenant_id=request.tenant_id, allocation_id=allocation_id, reason="training run ended"
                ),
                task_queue=scheduler.TASK_QUEUE,
                result_type=scheduler.ReleaseResult,
                **_QUICK,
            )

    async def _release(self, request: chain.ChainRequest, version_id: str, may_release: bool) -> bool:
        """Release through the gate, or wait for an approved override; False when the chain stops here."""
        if may_release:
            self._set(stage="releasing")
            await workflow.execute_activity(
                registry.RELEASE_VERSION,
                registry.ReleaseRequest(
                    tenant_id=request.tenant_id, version_id=version_id, actor=request.actor
                ),
                task_queue=registry.TASK_QUEUE,
                result_type=registry.ReleasedVersion,
                **_QUICK,
            )
            return True
        self._set(stage="awaiting_approval")
        try:
            await workflow.wait_condition(
                lambda: self._approval is not None, timeout=timedelta(seconds=request.approval_timeout_s)
            )
        except TimeoutError:
            self._set(stage="blocked")
            return False
        approval = self._approval
        assert approval is not None
        self._set(stage="releasing", approved_by=approval.approved_by)
        await workflow.execute_activity(
            registry.OVERRIDE_RELEASE,
            registry.OverrideReleaseRequest(
                tenant_id=request.tenant_id,
                version_id=version_id,
                approved_by=approval.approved_by,
                reason=approval.reason,
                actor=request.actor,
            ),
            task_queue=registry.TASK_QUEUE,
            result_type=registry.ReleasedVersion,
            **_QUICK,
        )
        return True
