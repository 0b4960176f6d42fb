"""The HTTP edge's input hygiene and error answers, on a toy app built with `create_app` (no stack needed):
NUL and non-finite numbers never reach a route, integers are JSON integers bounded to their column, every
response (a 500 included) carries its request id, a 405 says what is allowed, metrics never name a raw
path, and the OpenAPI document describes every problem answer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Annotated, Any

import httpx
import pytest
import schemathesis
import structlog
from fastapi import Depends, FastAPI, Query, Request
from forge_kit.errors import ForgeError, NotFound
from forge_kit.http import create_app
from forge_kit.types import (
    FiniteFloat,
    Int32,
    NonBlankLine,
    NonNegativeInt32,
    NonNegativeInt64Param,
    PositiveInt64,
    Text,
    Timestamp,
)
from hypothesis import HealthCheck, settings
from pydantic import BaseModel, ConfigDict, Field


class Colour(StrEnum):
    red = "red"
    blue = "blue"


class ThingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: NonBlankLine = Field(max_length=50)
    count: Int32 = 0
    priority: NonNegativeInt32 = Field(default=0, le=1000)
    size_bytes: PositiveInt64 = 1
    limit: NonNegativeInt32 | None = Field(default=None, ge=1, le=10)
    threshold: FiniteFloat | None = None
    notes: Text = Field(default="", max_length=200)
    colour: Colour = Colour.red
    due: Timestamp | None = None
    ref: uuid.UUID | None = None


class Unauthorized(ForgeError):
    status = 401
    title = "Unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="forge"'}  # noqa: RUF012


def toy_app() -> FastAPI:
    app = create_app("edge")
    things: dict[str, ThingCreate] = {}

    async def bind_caller(request: Request) -> None:
        structlog.contextvars.bind_contextvars(tenant="acme", user="ann")

    @app.post("/things/{thing_id}", status_code=201)
    async def create_thing(thing_id: str, body: ThingCreate) -> ThingCreate:
        things[thing_id] = body
        return body

    @app.get("/things/{thing_id}")
    async def get_thing(thing_id: str) -> ThingCreate:
        if thing_id not in things:
            raise NotFound(f"thing {thing_id!r} does not exist")
        return things[thing_id]

    @app.get("/things")
    async def list_things(
        offset: Annotated[NonNegativeInt64Param, Query()] = 0, name: str | None = None
    ) -> list[ThingCreate]:
        return [t for t in things.values() if name in (None, t.name)][offset:]

    @app.put("/blobs/{name}", include_in_schema=False)
    async def upload(name: str, request: Request) -> dict[str, Any]:
        data = b"".join([chunk async for chunk in request.stream()])
        return {"size_bytes": len(data), "nul": b"\x00" in data}

    @app.get("/boom", dependencies=[Depends(bind_caller)], include_in_schema=False)
    async def boom() -> None:
        raise RuntimeError("secret internals")

    @app.get("/whoami", include_in_schema=False)
    async def whoami() -> dict[str, Any]:
        structlog.get_logger().info("whoami")
        return {}

    @app.get("/private", include_in_schema=False)
    async def private() -> None:
        raise Unauthorized("this route needs a bearer token")

    return app


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # raise_app_exceptions stays on: an app that re-raised after its 500 would fail the test (a server
    # would drop the connection).
    transport = httpx.ASGITransport(app=toy_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        yield client


def assert_invalid(response: httpx.Response, location: str, kind: str | None = None) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert problem["request_id"] == response.headers["x-request-id"]
    assert any(e["location"] == location for e in problem["errors"]), problem
    if kind is not None:
        assert any(e["type"] == kind for e in problem["errors"]), problem


# ---------------------------------------------------------------------------------------------- NUL


async def test_a_nul_in_a_json_string_is_a_422_problem_naming_the_field(http: httpx.AsyncClient) -> None:
    response = await http.post("/things/t", json={"name": "a\x00b"})  # sent as "a\u0000b"
    assert_invalid(response, "body.name", "nul_character")


async def test_a_nul_in_a_json_key_or_nested_value_is_a_422_problem(http: httpx.AsyncClient) -> None:
    assert_invalid(
        await http.post("/things/t", json={"name": "a", "no\x00te": 1}), "body.note", "nul_character"
    )


async def test_a_raw_nul_byte_in_a_json_body_is_a_422_problem(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/things/t", content=b'{"name": "a\x00"}', headers={"content-type": "application/json"}
    )
    assert_invalid(response, "body", "nul_character")


async def test_a_nul_in_the_query_is_a_422_problem(http: httpx.AsyncClient) -> None:
    assert_invalid(await http.get("/things", params={"name": "a\x00"}), "query", "nul_character")


async def test_a_nul_in_the_path_is_a_422_problem(http: httpx.AsyncClient) -> None:
    assert_invalid(await http.get("/things/a%00b"), "path", "nul_character")


async def test_a_nul_in_a_header_is_a_422_problem(http: httpx.AsyncClient) -> None:
    assert_invalid(await http.get("/healthz", headers={"x-note": "a\x00"}), "header.x-note", "nul_character")


async def test_a_body_that_is_no_json_model_reaches_its_route_untouched(http: httpx.AsyncClient) -> None:
    data = b"\x00not json\x00" * 10_000
    response = await http.put("/blobs/b", content=data, headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert response.json() == {"size_bytes": len(data), "nul": True}


# ------------------------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
async def test_a_non_finite_number_in_json_is_a_422_problem(http: httpx.AsyncClient, number: str) -> None:
    body = f'{{"name": "a", "threshold": {number}}}'.encode()
    response = await http.post("/things/t", content=body, headers={"content-type": "application/json"})
    assert_invalid(response, "body", "finite_number")


@pytest.mark.parametrize("value", [True, "1000", 1.5])
async def test_a_bool_a_numeric_string_or_a_fraction_is_not_an_integer(
    http: httpx.AsyncClient, value: object
) -> None:
    assert_invalid(await http.post("/things/t", json={"name": "a", "count": value}), "body.count")


@pytest.mark.parametrize(
    ("field", "value"),
    [("count", 2**70), ("count", 2**31), ("count", -(2**31) - 1), ("size_bytes", 2**63), ("priority", -1)],
)
async def test_an_integer_outside_its_column_is_a_422_problem(
    http: httpx.AsyncClient, field: str, value: int
) -> None:
    assert_invalid(await http.post("/things/t", json={"name": "a", field: value}), f"body.{field}")


async def test_a_bound_at_the_use_site_narrows_the_columns_range(http: httpx.AsyncClient) -> None:
    assert_invalid(await http.post("/things/t", json={"name": "a", "priority": 1001}), "body.priority")
    assert_invalid(await http.post("/things/t", json={"name": "a", "limit": 11}), "body.limit")
    assert_invalid(await http.post("/things/t", json={"name": "a", "limit": 0}), "body.limit")


async def test_a_query_integer_outside_its_column_is_a_422_problem(http: httpx.AsyncClient) -> None:
    assert_invalid(await http.get("/things", params={"offset": str(2**70)}), "query.offset")
    assert (await http.get("/things", params={"offset": "3"})).status_code == 200


async def test_json_strings_still_parse_as_dates_uuids_and_enums_and_integral_numbers_as_integers(
    http: httpx.AsyncClient,
) -> None:
    ref = str(uuid.uuid4())
    body = {
        "name": "a",
        "count": -5,
        "priority": 3.0,
        "size_bytes": 2**40,
        "threshold": 2,
        "colour": "blue",
        "due": "2025-03-03T10:00:00Z",
        "ref": ref,
    }
    response = await http.post("/things/t", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["priority"], created["threshold"], created["colour"], created["ref"]) == (
        3,
        2.0,
        "blue",
        ref,
    )
    assert created["due"].startswith("2025-03-03T10:00:00")


# -------------------------------------------------------------------------------------- error answers


async def test_an_unexpected_error_is_a_500_problem_with_its_request_id_in_header_body_and_log(
    http: httpx.AsyncClient,
) -> None:
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        response = await http.get("/boom", headers={"x-request-id": "req-500"})

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-500"
    assert response.json()["request_id"] == "req-500"
    assert "secret" not in response.text
    [line] = [entry for entry in logs if entry["event"] == "http.unhandled"]
    assert line["log_level"] == "error"
    assert (line["request_id"], line["tenant"], line["user"], line["route"]) == (
        "req-500",
        "acme",
        "ann",
        "/boom",
    )


async def test_what_a_request_binds_to_the_log_context_ends_with_it(http: httpx.AsyncClient) -> None:
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        await http.get("/boom")  # binds tenant and user, then fails
        await http.get("/whoami", headers={"x-request-id": "req-next"})
    [line] = [entry for entry in logs if entry["event"] == "whoami"]
    assert line["request_id"] == "req-next"
    assert "tenant" not in line and "user" not in line
    assert "request_id" not in structlog.contextvars.get_contextvars()


async def test_error_handler_answers_carry_the_request_id_and_the_errors_headers(
    http: httpx.AsyncClient,
) -> None:
    missing = await http.get("/things/nope", headers={"x-request-id": "req-404"})
    assert missing.status_code == 404
    assert (missing.headers["x-request-id"], missing.json()["request_id"]) == ("req-404", "req-404")

    unauthorized = await http.get("/private")
    assert unauthorized.status_code == 401
    assert unauthorized.headers["www-authenticate"] == 'Bearer realm="forge"'
    assert unauthorized.headers["x-request-id"] == unauthorized.json()["request_id"]


async def test_a_request_id_that_is_not_a_plain_token_is_replaced(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz", headers={"x-request-id": "a b" * 100})
    assert len(response.headers["x-request-id"]) == 36


async def test_a_405_names_every_method_the_path_allows(http: httpx.AsyncClient) -> None:
    response = await http.delete("/things/t")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"]


async def test_metrics_label_an_unknown_path_unmatched_never_with_the_path(http: httpx.AsyncClient) -> None:
    secret = uuid.uuid4().hex
    assert (await http.get(f"/nope/{secret}")).status_code == 404
    metrics = (await http.get("/metrics")).text
    assert secret not in metrics
    assert 'route="unmatched",service="edge",status="404"' in metrics


# --------------------------------------------------------------------------------------------- OpenAPI

PROBLEM_STATUSES = {"400", "401", "403", "404", "409", "422", "429", "500", "503"}


def test_every_operation_documents_its_problem_answers_with_the_problem_schema() -> None:
    document = toy_app().openapi()
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            expected = {"422", "500"} if path in ("/healthz", "/readyz") else PROBLEM_STATUSES
            assert expected <= responses.keys(), (method, path)
            for status in (s for s in responses if s[0] in "45"):
                assert responses[status]["content"] == problem, (method, path, status)
    assert "503" in document["paths"]["/readyz"]["get"]["responses"]
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert {"type", "title", "status", "detail", "request_id", "errors"} <= schemas["Problem"][
        "properties"
    ].keys()


def test_the_openapi_states_bounds_as_json_schema_and_strings_without_nul() -> None:
    fields = toy_app().openapi()["components"]["schemas"]["ThingCreate"]["properties"]
    assert (fields["count"]["minimum"], fields["count"]["maximum"]) == (-(2**31), 2**31 - 1)
    assert fields["priority"]["maximum"] == 1000
    [limit] = [s for s in fields["limit"]["anyOf"] if s.get("type") == "integer"]
    assert (limit["minimum"], limit["maximum"]) == (1, 10)
    assert not {"le", "ge"} & limit.keys()
    assert fields["notes"]["pattern"] == r"^[^\x00]*$"


_schema = schemathesis.openapi.from_asgi("/openapi.json", toy_app())


@_schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_a_fuzzer_finds_every_answer_documented_and_no_server_error(case: Any) -> None:
    case.call_and_validate()
