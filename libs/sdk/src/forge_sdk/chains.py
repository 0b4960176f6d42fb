"""Model chains through the SDK (the training service's `/chains`): one workflow takes a dataset version to
a delivered bundle (train -> evaluate -> gate -> register -> release -> deliver). Start one, follow its
stage, approve the release when its gate failed, or cancel it.

    chains = forge.chains
    started = chains.start(json.loads(Path("chain.json").read_text()))
    done = chains.follow(started["chain_id"], on_stage=lambda view: print(view["status"]["stage"]))
    print(done["status"]["bundle_uri"])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NotRequired, TypedDict

from forge_sdk.client import Service

STOPPED = frozenset({"failed", "blocked", "cancelled"})
"""The stages a chain ends in without delivering."""


class StageMark(TypedDict):
    stage: str
    at: str


class ChainStatus(TypedDict):
    """What the chain has done so far (the fields the CLI reads; the API sends more)."""

    stage: str
    stages: list[StageMark]
    training_job_id: str | None
    allocation_id: str | None
    evaluation_job_id: str | None
    metrics: dict[str, float]
    model_version_id: str | None
    gate_passed: bool | None
    failed_checks: list[str]
    approved_by: str | None
    cancelled_by: str | None
    cancel_reason: str | None
    delivery_order_id: str | None
    bundle_uri: str | None
    error: str | None


class Chain(TypedDict):
    """`GET /chains/{id}`: the workflow's state (Temporal's: RUNNING, COMPLETED, FAILED, CANCELED...), its
    link in the Temporal UI, and the chain's status."""

    chain_id: str
    workflow_id: str
    workflow_status: str
    temporal_ui: str
    status: ChainStatus | None


class ChainSummary(TypedDict):
    """A chain in the list (its stage is in `get`)."""

    chain_id: str
    workflow_id: str
    workflow_status: str
    temporal_ui: str
    started_at: str | None
    closed_at: str | None
    model_name: NotRequired[str | None]
    started_by: NotRequired[str | None]


class ChainStopped(RuntimeError):
    """A chain stopped before the stage it was followed to: it failed, was blocked (no approval in time)
    or cancelled, or its workflow is no longer running. The chain as last seen in `chain`."""

    def __init__(self, chain: Chain, until: str) -> None:
        status = chain["status"]
        stage = status["stage"] if status else None
        reason = (status.get("error") or status.get("cancel_reason") or "") if status else ""
        super().__init__(
            f"chain {chain['chain_id']} stopped at {stage!r} ({chain['workflow_status']}) before {until!r}"
            + (f": {reason}" if reason else "")
            + f"; see {chain['temporal_ui']}"
        )
        self.chain, self.stage = chain, stage


def stage_of(chain: Chain) -> str | None:
    """The chain's current stage (None before its workflow answers)."""
    return chain["status"]["stage"] if chain["status"] else None


class Chains:
    """The tenant's model chains."""

    def __init__(self, api: Service) -> None:
        self.api = api

    def start(self, body: Mapping[str, Any], *, idempotency_key: str | None = None) -> Chain:
        """Start a chain: `body` is `POST /chains`'s (dataset and version, the hub's base model id, model and
        scheduler projects, `training`, `gate`, `model_name`, `card`; docs/training.md). You are its actor.
        Retried on a lost connection with one `Idempotency-Key` (`idempotency_key`, else a new one), so a
        retry never starts a second chain; pass your own key to make a repeat of the whole call safe too."""
        started: Chain = self.api.post(
            "/chains", json=dict(body), idempotent=True, idempotency_key=idempotency_key
        )
        return started

    def get(self, chain_id: str) -> Chain:
        found: Chain = self.api.get(f"/chains/{chain_id}")
        return found

    def list(self) -> Iterator[ChainSummary]:
        """The tenant's chains, newest first, page by page."""
        yield from self.api.pages("/chains", limit=50)

    def approve(self, chain_id: str, reason: str) -> Chain:
        """Release the chain's version although its gate failed (release approvers; you are the approver,
        audited with `reason`). ApiError 403 without the role, 409 unless it is `awaiting_approval`."""
        approved: Chain = self.api.post(f"/chains/{chain_id}/approve-release", json={"reason": reason})
        return approved

    def cancel(self, chain_id: str, reason: str | None = None) -> Chain:
        """Cancel a running chain (ApiError 409 once it ended); its training stops, its allocation is
        given back."""
        body = {"reason": reason} if reason else None
        cancelled: Chain = self.api.post(f"/chains/{chain_id}/cancel", json=body, idempotent=True)
        return cancelled

    def follow(
        self,
        chain_id: str,
        until: str = "delivered",
        *,
        on_stage: Callable[[Chain], None] | None = None,
        on_poll: Callable[[Chain], None] | None = None,
        interval_s: float = 1.0,
        timeout_s: float | None = None,
    ) -> Chain:
        """Poll the chain every `interval_s` until it has reached stage `until`: `on_stage(chain)` when its
        stage changes, `on_poll(chain)` on every poll. ChainStopped when it stops first (failed, blocked,
        cancelled, or its workflow no longer running); TimeoutError after `timeout_s`."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last: str | None = None
        while True:
            chain = self.get(chain_id)
            stage = stage_of(chain)
            if stage != last and on_stage is not None:
                on_stage(chain)
            last = stage
            if on_poll is not None:
                on_poll(chain)
            reached = [mark["stage"] for mark in chain["status"]["stages"]] if chain["status"] else []
            if stage == until or until in reached:
                return chain
            if chain["workflow_status"] != "RUNNING" or stage in STOPPED:
                raise ChainStopped(chain, until)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"chain {chain_id} did not reach {until!r} in {timeout_s:.0f}s (at {stage!r})"
                )
            time.sleep(interval_s)


__all__ = ["STOPPED", "Chain", "ChainStatus", "ChainStopped", "ChainSummary", "Chains", "stage_of"]
