"""The SDK's behaviour towards a service (pure: the service is an httpx mock transport, the SDK's own code
under test): problems become ApiError, retries only where a request may be sent twice (with one
idempotency key), pages followed,
versions named by alias, tasks followed to their end."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from forge_sdk import ApiError, Datasets, Service, TaskFailed

from tests.sdk.mocks import Handler, mock_service


def _service(handler: Handler) -> tuple[Service, list[httpx.Request]]:
    return mock_service(handler, base_url="http://forge/api/dataset", retries=2)


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("forge_sdk.client.time.sleep", lambda _: None)
    monkeypatch.setattr("forge_sdk.datasets.time.sleep", lambda _: None)


def test_a_problem_becomes_an_api_error_with_its_status_title_and_detail() -> None:
    problem = {"type": "about:blank", "title": "Conflict", "status": 409, "detail": "version is draft"}
    api, seen = _service(lambda _: httpx.Response(409, json=problem))
    with pytest.raises(ApiError) as raised:
        api.post("/datasets/d/versions/v/split", json={})
    assert (raised.value.status, raised.value.title, raised.value.detail) == (
        409,
        "Conflict",
        "version is draft",
    )
    assert str(raised.value) == "409: version is draft" and len(seen) == 1
    assert seen[0].headers["x-forge-tenant"] == "acme" and seen[0].headers["authorization"] == "Bearer t"


def test_reads_are_retried_on_unavailable_and_lost_connections_posts_only_when_idempotent() -> None:
    answers = iter([httpx.Response(503), httpx.Response(502), httpx.Response(200, json={"ok": 1})])
    api, seen = _service(lambda _: next(answers))
    assert api.get("/datasets") == {"ok": 1} and len(seen) == 3

    api, seen = _service(lambda _: httpx.Response(503))
    with pytest.raises(ApiError):
        api.post("/datasets", json={"name": "x"})
    assert len(seen) == 1  # a create is not sent twice
    with pytest.raises(ApiError):
        api.post("/datasets/d/versions/v/process", json={}, idempotent=True)
    assert len(seen) == 1 + 3  # an idempotent POST: the first try and two retries

    def drop(_: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    api, seen = _service(drop)
    with pytest.raises(httpx.ConnectError):
        api.get("/datasets")
    assert len(seen) == 3


def test_an_idempotent_post_repeats_one_idempotency_key_on_every_retry_and_a_new_one_per_call() -> None:
    answers = iter([httpx.Response(503), httpx.Response(201, json={"id": 1}), httpx.Response(201, json={})])
    api, seen = _service(lambda _: next(answers))
    assert api.post("/chains", json={}, idempotent=True) == {"id": 1}
    keys = [request.headers["idempotency-key"] for request in seen]
    assert len(keys) == 2 and keys[0] == keys[1]  # the retry is the same request
    api.post("/chains", json={}, idempotent=True)
    assert seen[2].headers["idempotency-key"] != keys[0]  # another call is another request

    api, seen = _service(lambda _: httpx.Response(201, json={}))
    api.post("/chains", json={}, idempotency_key="mine")
    api.post("/datasets", json={})
    api.get("/datasets", idempotent=True)
    assert seen[0].headers["idempotency-key"] == "mine"
    assert "idempotency-key" not in seen[1].headers and "idempotency-key" not in seen[2].headers


def test_pages_are_followed_by_next_offset_and_a_plain_list_is_one_page() -> None:
    def page(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        items = list(range(offset, min(offset + 2, 5)))
        return httpx.Response(
            200, json={"items": items, "next_offset": offset + 2 if offset + 2 < 5 else None}
        )

    api, seen = _service(page)
    assert list(api.pages("/datasets/d/tasks/t/dropped", limit=2)) == [0, 1, 2, 3, 4] and len(seen) == 3
    api, _ = _service(lambda _: httpx.Response(200, json=[1, 2]))
    assert list(api.pages("/datasets")) == [1, 2]


def test_a_version_is_named_by_id_or_alias() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/versions/v1"):
            return httpx.Response(200, json={"id": "v1"})
        if request.url.path.endswith("/aliases/latest"):
            return httpx.Response(200, json={"version_id": "v9"})
        return httpx.Response(404, json={"status": 404, "detail": "not found"})

    datasets = Datasets(_service(answer)[0])
    assert datasets.version_id("d", "v1") == "v1" and datasets.version_id("d", "latest") == "v9"
    with pytest.raises(ApiError, match="version 'golden' of dataset 'd' does not exist"):
        datasets.version_id("d", "golden")


def test_a_task_is_followed_to_its_end_and_a_failure_raised(tmp_path: Path) -> None:
    states = iter(["queued", "running", "succeeded"])

    def task(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "t", "kind": "split", "state": next(states), "progress": 0.5})

    seen: list[str] = []
    done = Datasets(_service(task)[0]).follow("d", {"id": "t"}, on_progress=lambda t: seen.append(t["state"]))
    assert done["state"] == "succeeded" and seen == ["queued", "running", "succeeded"]
    failing = {"id": "t", "kind": "process", "state": "failed", "error": "a rule raised"}
    with pytest.raises(TaskFailed, match="the process task t failed: a rule raised"):
        Datasets(_service(lambda _: httpx.Response(200, json=failing))[0]).follow("d", {"id": "t"})

    sent: list[int] = []
    data = tmp_path / "train.jsonl"
    data.write_bytes(b'{"a": 1}\n' * 200_000)
    uploads: list[bytes] = []

    def put(request: httpx.Request) -> httpx.Response:
        uploads.append(request.read())
        return httpx.Response(200, json={"name": "train.jsonl"})

    Datasets(_service(put)[0]).upload_file("d", "v", data, on_progress=sent.append)
    assert uploads == [data.read_bytes()] and sum(sent) == data.stat().st_size and len(sent) == 2


def test_a_service_is_reached_through_the_gateway_unless_an_address_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from forge_sdk import Forge

    monkeypatch.delenv("FORGE_DATASET_URL", raising=False)
    forge = Forge({}, gateway="http://127.0.0.1:18000/", urls={"dataset": "http://127.0.0.1:18101"})
    assert forge.base_url("dataset") == "http://127.0.0.1:18000/api/dataset"
    assert (
        Forge({}, urls={"dataset": "http://127.0.0.1:18101"}).base_url("dataset") == "http://127.0.0.1:18101"
    )
    monkeypatch.setenv("FORGE_DATASET_URL", "http://elsewhere")
    assert forge.base_url("dataset") == "http://elsewhere"
    with pytest.raises(ApiError, match="no address for the registry service"):
        Forge({}).base_url("registry")
