"""What the dataset service's routers take: its dependencies, and the caller allowed the route's action
(the kit's principal; forge_kit.policy has the table)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from forge_kit.auth import Principal, allow
from forge_kit.policy import Action

from forge_dataset.deps import Deps as ServiceDeps


def _deps(request: Request) -> ServiceDeps:
    deps: ServiceDeps = request.app.state.deps
    return deps


Deps = Annotated[ServiceDeps, Depends(_deps)]
CanDatasetRead = Annotated[Principal, allow(Action.DATASET_READ)]
CanDatasetWrite = Annotated[Principal, allow(Action.DATASET_WRITE)]
