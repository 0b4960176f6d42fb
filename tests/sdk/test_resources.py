"""The SDK's jobs, models and chains (pure: the services are an httpx mock transport): a job followed with
its new log lines and a failure raised, a chain followed to a stage and a stop raised, chains listed page
by page, registry projects and versions named by name and number."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from forge_sdk import ApiError, Chains, ChainStopped, Forge, JobFailed, Jobs, Models, Service

from tests.sdk.mocks import Handler, mock_service


def _service(handler: Handler) -> tuple[Service, list[httpx.Request]]:
    return mock_service(handler, base_url="http://forge/api/x", retries=0)


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("forge_sdk.jobs.time.sleep", lambda _: None)
    monkeypatch.setattr("forge_sdk.chains.time.sleep", lambda _: None)


def _job(state: str, step: int, error: str | None = None) -> dict[str, Any]:
    return {
        "id": "j",
        "name": "lora",
        "state": state,
        "progress": {"step": step, "total_steps": 4, "percent": step / 4 * 100, "eta_s": 4.0 - step},
        "latest_metrics": {},
        "error": error,
    }


class FakeTraining:
    """A training job that moves through `states`, writing one log line per poll."""

    def __init__(self, states: list[tuple[str, int]], error: str | None = None) -> None:
        self.states, self.error, self.polls, self.lines = states, error, 0, 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/logs"):
            after = int(request.url.params.get("after", 0))
            lines = [
                {"seq": seq, "level": "info", "message": f"line {seq}", "logged_at": "2026-01-01T00:00:00Z"}
                for seq in range(after + 1, self.lines + 1)
            ]
            return httpx.Response(
                200, json={"job_id": "j", "lines": lines, "next_after": lines[-1]["seq"] if lines else after}
            )
        state, step = self.states[min(self.polls, len(self.states) - 1)]
        self.polls += 1
        self.lines += 1
        return httpx.Response(200, json=_job(state, step, self.error if state == "failed" else None))


def test_a_job_is_followed_to_its_end_with_each_log_line_once() -> None:
    training = FakeTraining([("queued", 0), ("running", 2), ("succeeded", 4)])
    steps: list[int] = []
    lines: list[int] = []

    done = Jobs(_service(training)[0]).follow(
        "j",
        on_progress=lambda job: steps.append(job["progress"]["step"]),
        on_log=lambda line: lines.append(line["seq"]),
    )

    assert done["state"] == "succeeded" and steps == [0, 2, 4]
    assert lines == [1, 2, 3]  # every line once, in order, including those written before the end


def test_a_job_that_fails_raises_job_failed_with_its_error() -> None:
    training = FakeTraining([("running", 1), ("failed", 1)], error="ValueError: no records")

    with pytest.raises(JobFailed, match="training job j failed: ValueError: no records") as raised:
        Jobs(_service(training)[0]).follow("j")
    assert raised.value.job["state"] == "failed"


def _chain(stage: str, workflow: str = "RUNNING", error: str | None = None) -> dict[str, Any]:
    order = ["resolving_dataset", "training", "evaluating", "awaiting_approval", "delivering", "delivered"]
    reached = order[: order.index(stage) + 1] if stage in order else [*order[:2], stage]
    return {
        "chain_id": "c",
        "workflow_id": "model-chain:acme:c",
        "workflow_status": workflow,
        "temporal_ui": "http://ui/c",
        "status": {"stage": stage, "stages": [{"stage": s, "at": "t"} for s in reached], "error": error},
    }


def _chain_service(views: list[dict[str, Any]]) -> Chains:
    answers = iter(views)
    return Chains(_service(lambda _: httpx.Response(200, json=next(answers)))[0])


def test_a_chain_is_followed_until_its_stage_telling_each_stage_once() -> None:
    views = [_chain("training"), _chain("training"), _chain("evaluating"), _chain("delivered", "COMPLETED")]
    stages: list[str] = []

    done = _chain_service(views).follow("c", on_stage=lambda chain: stages.append(chain["status"]["stage"]))

    assert done["workflow_status"] == "COMPLETED" and stages == ["training", "evaluating", "delivered"]
    # A stage already passed counts as reached (the poll may miss it).
    reached = _chain_service([_chain("delivering")]).follow("c", until="awaiting_approval")
    assert reached["status"]["stage"] == "delivering"


@pytest.mark.parametrize(
    ("stage", "workflow"),
    [("failed", "FAILED"), ("blocked", "COMPLETED"), ("cancelled", "CANCELED"), ("training", "TERMINATED")],
)
def test_a_chain_that_stops_before_its_stage_raises_chain_stopped(stage: str, workflow: str) -> None:
    chains = _chain_service([_chain("training"), _chain(stage, workflow, error="the runtime exited 1")])

    with pytest.raises(ChainStopped, match=f"stopped at '{stage}' \\({workflow}\\)") as raised:
        chains.follow("c")
    assert raised.value.stage == stage and "http://ui/c" in str(raised.value)


def test_chains_are_listed_page_by_page() -> None:
    def page(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        items = [{"chain_id": str(i)} for i in range(offset, min(offset + 50, 120))]
        return httpx.Response(
            200, json={"items": items, "next_offset": offset + 50 if offset < 100 else None}
        )

    service, seen = _service(page)
    assert [c["chain_id"] for c in Chains(service).list()] == [str(i) for i in range(120)]
    assert [r.url.params["offset"] for r in seen] == ["0", "50", "100"]


def test_a_project_is_named_by_name_and_a_version_by_number() -> None:
    project = "01956900-aaaa-7bbb-8ccc-000000000001"

    def registry(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/x")
        if path == "/model-projects":
            return httpx.Response(200, json=[{"id": project, "name": "support"}])
        if path == f"/model-projects/{project}/versions":
            return httpx.Response(200, json=[{"id": "v1", "version": 1}, {"id": "v2", "version": 2}])
        if path == f"/model-projects/{project}/versions/v2/override-release":
            return httpx.Response(200, json={"id": "v2", "version": 2, "state": "released"})
        return httpx.Response(404, json={"status": 404, "title": "Not found", "detail": path})

    service, seen = _service(registry)
    models = Models(service)
    assert models.approve("support", "2", "within noise")["state"] == "released"
    assert seen[-1].read() == b'{"reason":"within noise"}'
    assert models.project_id(project) == project  # an id is taken as it is, without a lookup
    with pytest.raises(ApiError, match="model project 'other' does not exist"):
        models.project_id("other")
    with pytest.raises(ApiError, match="has no version 7"):
        models.version("support", "7")


def test_the_resources_reach_their_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORGE_TRAINING_URL", raising=False)
    monkeypatch.delenv("FORGE_REGISTRY_URL", raising=False)
    forge = Forge({}, gateway="http://gw")
    assert str(forge.jobs.api.http.base_url) == "http://gw/api/training/"
    assert str(forge.chains.api.http.base_url) == "http://gw/api/training/"
    assert str(forge.models.api.http.base_url) == "http://gw/api/registry/"
