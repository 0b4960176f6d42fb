"""Activities the model chain needs from the training service itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from forge_contracts.activities.chain import CREATE_CHAIN_JOB, CreateChainJob
from forge_contracts.activities.training import JobRef
from forge_kit.db import Database
from sqlmodel import select
from temporalio import activity

from forge_training import service
from forge_training.schemas import Hyperparameters, LoraConfig, TrainingSpec
from forge_training.tables import TrainingJob


class ChainActivities:
    """Bound to the service's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def all(self) -> list[Callable[..., Any]]:
        return [self.create_chain_job]

    @activity.defn(name=CREATE_CHAIN_JOB)
    async def create_chain_job(self, request: CreateChainJob) -> JobRef:
        """Create the chain's training job once: a retry finds the job named after the chain."""
        name = f"chain {request.request_key}"[:200]
        async with self.db.session() as session:
            found = (
                await session.exec(
                    select(TrainingJob).where(
                        TrainingJob.tenant == request.tenant_id, TrainingJob.name == name
                    )
                )
            ).first()
        if found is not None:
            return JobRef(tenant_id=request.tenant_id, job_id=found.id)
        spec = request.training
        inputs = service.JobInputs(  # resolved by the chain: the dataset version, the hub's base model
            base_model_uri=request.base_model_uri,
            base_model_id=request.base_model_id,
            dataset_id=request.dataset_id,
            dataset_version_id=request.dataset_version_id,
            bucket=request.bucket,
            train_key=request.train_key,
            validation_key=request.validation_key,
        )
        body = TrainingSpec(
            name=name,
            project_id=request.model_project_id,
            hyperparameters=Hyperparameters(
                max_steps=spec.max_steps,
                learning_rate=spec.learning_rate,
                batch_size=spec.batch_size,
                seed=spec.seed,
                checkpoint_every_steps=spec.checkpoint_every_steps,
                eval_every_steps=spec.max_steps if request.validation_key else None,
            ),
            lora=LoraConfig(
                rank=spec.lora_rank, alpha=spec.lora_alpha, target_modules=spec.lora_target_modules
            ),
        )
        job = await service.create_job(self.db, request.tenant_id, request.actor, body, inputs)
        return JobRef(tenant_id=request.tenant_id, job_id=job.id)
