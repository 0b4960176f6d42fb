"""The Forge Python SDK: `Forge.signed_in()` after `forge login`, then the services' APIs.

forge = Forge.signed_in(tenant="acme")
datasets = forge.datasets
dataset = datasets.create("support-sft", secrecy="internal")
datasets.upload_file(dataset["id"], version_id, Path("train.jsonl"), on_progress=print)
job = forge.jobs.create(config)                       # training jobs; forge.jobs.follow(job["id"], ...)
chain = forge.chains.follow(forge.chains.start(body)["chain_id"])   # dataset version -> delivered bundle
versions = forge.models.versions("support-bot")       # the registry
"""

from forge_sdk.chains import Chains, ChainStopped
from forge_sdk.client import ApiError, Forge, NotSignedIn, Service
from forge_sdk.datasets import Datasets, TaskFailed
from forge_sdk.jobs import JobFailed, Jobs
from forge_sdk.models import Models

__all__ = [
    "ApiError",
    "ChainStopped",
    "Chains",
    "Datasets",
    "Forge",
    "JobFailed",
    "Jobs",
    "Models",
    "NotSignedIn",
    "Service",
    "TaskFailed",
]
