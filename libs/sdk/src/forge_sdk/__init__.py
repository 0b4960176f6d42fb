"""The Forge Python SDK: `Forge.signed_in()` after `forge login`, then the services' APIs.

forge = Forge.signed_in(tenant="acme")
datasets = forge.datasets
dataset = datasets.create("support-sft", secrecy="internal")
version = datasets.upload(dataset["id"], [Path("train.jsonl")], on_progress=print)
"""

from forge_sdk.client import ApiError, Forge, Service
from forge_sdk.datasets import Datasets, TaskFailed

__all__ = ["ApiError", "Datasets", "Forge", "Service", "TaskFailed"]
