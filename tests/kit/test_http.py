"""The HTTP edge: bad input gets problem+json with a useful detail (never a 500), illegal transitions
are 409, and health, readiness and metrics are served."""

from __future__ import annotations

import httpx
from forge_kit.http import create_app

from tests.identity import as_user
from tests.kit.conftest import Toy

TENANT = as_user("alice", "acme")


async def test_invalid_body_is_a_422_problem_naming_the_field(toy: Toy) -> None:
    response = await toy.http.post("/counters/c/increments", json={"by": 0}, headers=TENANT)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert "by" in problem["detail"] and "greater than or equal to 1" in problem["detail"]
    assert problem["errors"][0]["location"] == "body.by"


async def test_malformed_json_is_a_422_problem_not_a_500(toy: Toy) -> None:
    response = await toy.http.post(
        "/counters/c/increments", content=b"{not json", headers={**TENANT, "content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["title"] == "Invalid request"


async def test_a_request_without_a_token_is_a_401_problem(toy: Toy) -> None:
    response = await toy.http.post("/counters/c/increments", json={"by": 1})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_tenant_the_caller_does_not_belong_to_is_a_404(toy: Toy) -> None:
    response = await toy.http.post(
        "/counters/c/increments", json={"by": 1}, headers=TENANT.in_tenant("globex")
    )
    assert response.status_code == 404 and "globex" in response.json()["detail"]


async def test_unknown_resource_is_a_404_problem(toy: Toy) -> None:
    response = await toy.http.get("/counters/nope", headers=TENANT)
    assert response.status_code == 404
    assert response.json()["detail"] == "counter 'nope' does not exist"
    assert (await toy.http.get("/no/such/route")).json()["status"] == 404


async def test_an_illegal_transition_is_a_409_problem_and_changes_nothing(toy: Toy) -> None:
    await toy.http.post("/counters/c/increments", json={"by": 2}, headers=TENANT)
    assert (await toy.http.post("/counters/c/close", headers=TENANT)).json()["state"] == "closed"

    response = await toy.http.post("/counters/c/increments", json={"by": 5}, headers=TENANT)
    assert response.status_code == 409
    problem = response.json()
    assert problem["current_state"] == "closed"
    assert problem["transition"] == "increment"
    assert "closed" in problem["detail"]
    after = (await toy.http.get("/counters/c", headers=TENANT)).json()
    assert after == {"id": "c", "state": "closed", "value": 2, "sequence": 2}


async def test_request_id_is_echoed_or_generated(toy: Toy) -> None:
    given = await toy.http.get("/healthz", headers={"x-request-id": "req-123"})
    assert given.headers["x-request-id"] == "req-123"
    generated = await toy.http.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 36


async def test_health_readiness_and_metrics_are_served(toy: Toy) -> None:
    assert (await toy.http.get("/healthz")).json()["status"] == "ok"
    ready = await toy.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "kafka": "ok", "temporal": "ok"}
    await toy.http.post("/counters/m/increments", json={"by": 1}, headers=TENANT)
    metrics = (await toy.http.get("/metrics")).text
    assert 'forge_http_requests_total{method="POST",route="/counters/{counter_id}/increments"' in metrics


async def test_readiness_is_503_naming_the_dependency_that_is_down() -> None:
    async def broken() -> None:
        raise ConnectionRefusedError("connection refused on 127.0.0.1:1")

    async def fine() -> None:
        return None

    app = create_app("probe", readiness={"database": fine, "kafka": broken})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": "ok",
        "kafka": "ConnectionRefusedError: connection refused on 127.0.0.1:1",
    }
    assert "kafka" in response.json()["detail"]


async def test_an_unexpected_error_is_a_500_problem_without_internals() -> None:
    app = create_app("probe")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as http:
        response = await http.get("/boom", headers={"x-request-id": "r-1"})
    assert response.status_code == 500
    assert "secret" not in response.text
    assert response.json()["request_id"] == "r-1"
