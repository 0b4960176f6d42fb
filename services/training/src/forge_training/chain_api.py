"""`/chains`: run the whole model chain (train -> evaluate -> gate -> register -> deliver) as one workflow,
follow its stage, approve the release of a version whose evaluation failed, or cancel it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response, status
from forge_contracts.activities import chain
from forge_contracts.activities.dataset import VersionSelector
from forge_contracts.activities.delivery import ModelCardInfo
from forge_contracts.activities.registry import Thresholds
from forge_contracts.envelope import uuid7
from forge_contracts.events.base import Id
from forge_kit.auth import Forbidden, Principal, allow
from forge_kit.errors import Conflict, NotFound
from forge_kit.idempotency import IdempotencyKey, keyed_id, request_fingerprint
from forge_kit.policy import Action
from forge_kit.runtime import Runtime
from forge_kit.types import FiniteFloat, Line, NonBlankText, PositiveInt32, PositiveInt64, Text, Username
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from forge_training import service
from forge_training.service import Deps

CanRegistryApprove = Annotated[Principal, allow(Action.REGISTRY_APPROVE)]
CanTrainingRead = Annotated[Principal, allow(Action.TRAINING_READ)]
CanTrainingRun = Annotated[Principal, allow(Action.TRAINING_RUN)]
router = APIRouter(prefix="/chains", tags=["chains"])


class ApproveRelease(BaseModel):
    """The override of a failed gate: why (audited). The approver is the signed-in user."""

    model_config = ConfigDict(extra="forbid")

    reason: NonBlankText = Field(max_length=4000)
    approved_by: Username | None = Field(default=None, description="If given, must be you.")


class StartChain(BaseModel):
    """`POST /chains`: what to train from, where it goes, and the gate it must pass."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: Id
    dataset_version_id: VersionSelector = Field(
        description="The version to train on, by id or by an alias of the dataset (`latest`, `golden`): an "
        "alias is resolved when the chain starts, and the chain runs on that version to the end."
    )
    base_model_id: Id = Field(description="The base model of the hub to fine-tune (the registry's id).")
    base_model_uri: Line | None = Field(
        default=None,
        max_length=2048,
        description="Deprecated: the hub's base model says where its files are; if given, it must match.",
    )
    model_project_id: Id
    scheduler_project_id: Id
    cpu_millis: PositiveInt64 = Field(default=1000, le=10_000_000, description="as the scheduler bounds it")
    memory_bytes: PositiveInt64 = Field(default=2 * 1024**3)
    training: chain.ChainTraining = Field(default_factory=chain.ChainTraining)
    gate: Thresholds = Field(min_length=1, description='e.g. {"perplexity": {"max": 100}}')
    eval_max_records: PositiveInt32 | None = None
    eval_max_new_tokens: PositiveInt32 = Field(default=16, le=4096)
    model_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    card: ModelCardInfo
    approval_timeout_s: FiniteFloat = Field(default=24 * 3600.0, gt=0, le=365 * 24 * 3600.0)


class CancelChain(BaseModel):
    """`POST /chains/{id}/cancel`: why (optional; recorded with the caller's X-Forge-User)."""

    model_config = ConfigDict(extra="forbid")

    reason: Text | None = Field(default=None, max_length=4000)


class ChainView(BaseModel):
    chain_id: str
    workflow_id: str
    workflow_status: str
    temporal_ui: str
    status: chain.ChainStatus | None
    model_name: str | None = None
    started_by: str | None = None
    dataset_id: str | None = None
    model_project_id: str | None = None
    scheduler_project_id: str | None = None


class ChainSummary(BaseModel):
    """A chain in the list: its workflow's state and times (the stage is in `GET /chains/{id}`)."""

    chain_id: str
    workflow_id: str
    workflow_status: str
    temporal_ui: str
    started_at: datetime | None
    closed_at: datetime | None
    model_name: str | None = None
    started_by: str | None = None
    dataset_id: str | None = None
    model_project_id: str | None = None
    scheduler_project_id: str | None = None


MEMO = ("model_name", "started_by", "dataset_id", "model_project_id", "scheduler_project_id")
"""What a chain's workflow carries in its memo, for the list (chains started before it have none)."""


def _memo(memo: Mapping[str, Any]) -> dict[str, str]:
    return {key: memo[key] for key in MEMO if isinstance(memo.get(key), str)}


class ChainList(BaseModel):
    items: list[ChainSummary]
    next_offset: int | None = Field(description="The offset of the next page; null on the last one.")


def _ui(svc: Runtime, workflow_id: str) -> str:
    return (
        f"{svc.settings.temporal_ui_url}/namespaces/{svc.settings.temporal_namespace}/workflows/"
        f"{quote(workflow_id, safe='')}"
    )


def _view(
    svc: Runtime, chain_id: str, workflow_id: str, state: str, status_: chain.ChainStatus | None
) -> ChainView:
    return ChainView(
        chain_id=chain_id,
        workflow_id=workflow_id,
        workflow_status=state,
        temporal_ui=_ui(svc, workflow_id),
        status=status_,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "the chain this Idempotency-Key started already"}},
)
async def start_chain(
    body: StartChain,
    caller: CanTrainingRun,
    svc: Runtime,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ChainView:
    """Start a chain for the signed-in user (recorded as its actor). The dataset version and the base
    model are resolved first, as the caller's tenant sees them (404 for another tenant's): the chain
    trains on the base model's files as the registry has them, never on a path the caller gives. With an
    `Idempotency-Key`, a repeat of the request (a retry after a lost answer, or the same request sent
    twice at once) answers the chain the first one started (200) and starts no other; the same key with
    another request is a 422."""
    assert svc.temporal is not None
    fingerprint = request_fingerprint(body)
    if idempotency_key is not None:
        chain_id = keyed_id(caller.tenant_id, caller.actor, "chain", idempotency_key)
        started = await _started_by_key(chain_id, caller, svc, fingerprint, idempotency_key)
        if started is not None:
            response.status_code = status.HTTP_200_OK
            return started
    else:
        chain_id = uuid7()
    deps: Deps = request.app.state.deps
    resolved = await service.resolve(
        deps,
        caller.tenant_id,
        dataset_id=body.dataset_id,
        dataset_version_id=body.dataset_version_id,
        base_model_id=body.base_model_id,
    )
    assert resolved.base_model is not None and resolved.dataset is not None
    if body.base_model_uri is not None and body.base_model_uri != resolved.base_model.uri:
        raise service.Unprocessable(
            f"base_model_uri: base model {body.base_model_id} is at {resolved.base_model.uri}, not "
            f"{body.base_model_uri}; leave base_model_uri out"
        )
    workflow_id = chain.workflow_id(caller.tenant_id, chain_id)
    chain_request = chain.ChainRequest(
        chain_id=chain_id,
        tenant_id=caller.tenant_id,
        actor=caller.actor,
        **body.model_dump(exclude={"base_model_uri", "dataset_version_id"}),
        dataset_version_id=resolved.dataset.version_id,  # pinned: an alias moving later changes nothing
        base_model_uri=resolved.base_model.uri,
    )
    # What the list shows of each chain without querying every workflow (and the request's fingerprint, to
    # tell a repeat of a keyed request from another request under its key).
    memo = {
        "model_name": body.model_name,
        "started_by": caller.actor,
        "dataset_id": body.dataset_id,
        "model_project_id": body.model_project_id,
        "scheduler_project_id": body.scheduler_project_id,
        "request_sha256": fingerprint,
    }
    try:
        await svc.temporal.start_workflow(
            chain.WORKFLOW,
            chain_request,
            id=workflow_id,
            task_queue=svc.task_queue,
            # A workflow id names one chain for good, ended or not: a keyed repeat can never start a second.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            memo=memo,
        )
    except WorkflowAlreadyStartedError:  # the same key at the same moment: the other request started it
        assert idempotency_key is not None
        started = await _started_by_key(chain_id, caller, svc, fingerprint, idempotency_key)
        if started is None:
            raise
        response.status_code = status.HTTP_200_OK
        return started
    view = _view(svc, chain_id, workflow_id, "RUNNING", chain.ChainStatus(stage="resolving_dataset"))
    return view.model_copy(update=_memo(memo))  # as GET /chains/{id} shows it


async def _started_by_key(
    chain_id: str, caller: Principal, svc: Runtime, fingerprint: str, key: str
) -> ChainView | None:
    """The chain an idempotency key started, if it did; 422 when it was started by another request."""
    assert svc.temporal is not None
    try:
        handle = svc.temporal.get_workflow_handle(chain.workflow_id(caller.tenant_id, chain_id))
        described = await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    if (await described.memo()).get("request_sha256") != fingerprint:
        raise service.Unprocessable(
            f"idempotency key {key!r} started chain {chain_id} with another request; send the same request "
            "again, or use a new key"
        )
    return await get_chain(chain_id, caller, svc)


@router.get("")
async def list_chains(
    caller: CanTrainingRead,
    svc: Runtime,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ChainList:
    """The tenant's chains, newest first, from Temporal's visibility store (workflow ids carry the tenant)."""
    assert svc.temporal is not None
    prefix = chain.workflow_id(caller.tenant_id, "")
    query = f'WorkflowType = "{chain.WORKFLOW}" AND WorkflowId STARTS_WITH "{prefix}"'
    items: list[ChainSummary] = []
    seen = 0
    async for execution in svc.temporal.list_workflows(query, page_size=min(offset + limit + 1, 1000)):
        if not execution.id.startswith(prefix):  # never another tenant's, whatever the store matched
            continue
        seen += 1
        if seen <= offset:
            continue
        if len(items) == limit:
            return ChainList(items=items, next_offset=offset + limit)
        items.append(
            ChainSummary(
                **_memo(await execution.memo()),
                chain_id=execution.id.removeprefix(prefix),
                workflow_id=execution.id,
                workflow_status=execution.status.name if execution.status else "UNKNOWN",
                temporal_ui=_ui(svc, execution.id),
                started_at=execution.start_time,
                closed_at=execution.close_time,
            )
        )
    return ChainList(items=items, next_offset=None)


@router.get("/{chain_id}")
async def get_chain(chain_id: str, caller: CanTrainingRead, svc: Runtime) -> ChainView:
    assert svc.temporal is not None
    workflow_id = chain.workflow_id(caller.tenant_id, chain_id)  # another tenant's chain has another id: 404
    handle = svc.temporal.get_workflow_handle(workflow_id)
    try:
        described = await handle.describe()
        current = await handle.query(chain.STAGE, result_type=chain.ChainStatus)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"chain {chain_id!r} does not exist") from error
        raise
    state = described.status.name if described.status else "UNKNOWN"
    view = _view(svc, chain_id, workflow_id, state, current)
    return view.model_copy(update=_memo(await described.memo()))


@router.post("/{chain_id}/approve-release", status_code=status.HTTP_202_ACCEPTED)
async def approve_release(
    chain_id: str, body: ApproveRelease, caller: CanRegistryApprove, svc: Runtime
) -> ChainView:
    """Release the chain's version although its gate failed (release approvers); you are the approver."""
    if body.approved_by not in (None, caller.actor):
        raise Forbidden(f"{caller.actor} may not approve in the name of {body.approved_by!r}")
    approval = chain.Approval(approved_by=caller.actor, reason=body.reason)
    view = await get_chain(chain_id, caller, svc)
    if view.workflow_status != WorkflowExecutionStatus.RUNNING.name or view.status is None:
        raise Conflict(f"chain {chain_id!r} is {view.workflow_status.lower()}; nothing to approve")
    if view.status.stage != "awaiting_approval":
        raise Conflict(f"chain {chain_id!r} is at stage {view.status.stage!r}, not awaiting approval")
    assert svc.temporal is not None
    await svc.temporal.get_workflow_handle(view.workflow_id).signal(chain.APPROVE_RELEASE, approval)
    return view


@router.post("/{chain_id}/cancel", status_code=status.HTTP_202_ACCEPTED)
async def cancel_chain(
    chain_id: str, caller: CanTrainingRun, svc: Runtime, body: CancelChain | None = None
) -> ChainView:
    """Cancel a running chain: the training run is stopped and its allocation given back; a registered
    version stays as it is. The chain's status shows `cancelled` (with who and why) once it has unwound."""
    view = await get_chain(chain_id, caller, svc)
    if view.workflow_status != WorkflowExecutionStatus.RUNNING.name:
        raise Conflict(f"chain {chain_id!r} is {view.workflow_status.lower()}; it can no longer be cancelled")
    assert svc.temporal is not None
    handle = svc.temporal.get_workflow_handle(view.workflow_id)
    reason = body.reason if body is not None else None
    try:
        await handle.signal(
            chain.CANCEL_REQUESTED, chain.Cancellation(cancelled_by=caller.actor, reason=reason)
        )
        await handle.cancel()
    except RPCError as error:  # it ended between the read and the cancel
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise Conflict(f"chain {chain_id!r} has just ended; it can no longer be cancelled") from error
        raise
    return view
