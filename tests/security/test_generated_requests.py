"""Generated requests against every operation of every service (schemathesis: examples, the coverage
phase's boundary cases and a few fuzzed cases each, positive and negative, the same ones every run):
no server errors, and every response as the OpenAPI documents it.

Each request is signed in as a caller allowed the operation's action (a user with every tenant role,
a service identity for service-only routes, the platform admin for platform-only ones), in a fresh
tenant. How much is generated: see CONFIG."""

from __future__ import annotations

import os
import time
from typing import Any

import schemathesis
from forge_kit.policy import Action
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.security.conftest import (
    GENERATED_ANSWERS,
    GENERATED_REFUSED,
    GENERATED_REQUESTS,
    GENERATED_SECONDS,
    Forge,
    documented_apis,
)

THOROUGH = bool(os.environ.get("FORGE_SCHEMATHESIS_THOROUGH"))
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20240601,
        "generation": {
            "max-examples": int(os.environ.get("FORGE_SCHEMATHESIS_EXAMPLES", "50" if THOROUGH else "12")),
            "deterministic": True,
            "database": "none",
            "no-shrink": True,
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True}
            if THOROUGH
            else {"enabled": True, "generation": {"mode": "positive"}, "unexpected-methods": []},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
)
"""Bounded for a 2-core CI (about 3 000 requests): every documented example, the coverage phase's
valid boundary cases (smallest, largest, empty, ...) and a dozen fuzzed cases per operation, valid and
invalid, the same ones every run (derandomized, a fixed seed, no example database, no shrinking).
FORGE_SCHEMATHESIS_THOROUGH=1 adds the coverage phase's invalid cases and unexpected methods and fuzzes
50 cases per operation (about 10 000 requests); FORGE_SCHEMATHESIS_EXAMPLES sets the fuzzed count."""

APIS = {
    service: schemathesis.openapi.from_dict(doc, config=CONFIG) for service, doc in documented_apis().items()
}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _generated_request(case: Any, forge: Forge, service: str) -> None:
    action = case.operation.definition.raw.get("x-forge-action")  # none: operations routes (/readyz)
    headers = dict(forge.people.for_action(Action(action))) if action else {}
    if case.path_parameters and "tenant_id" in case.path_parameters:
        case.path_parameters["tenant_id"] = forge.people.tenant  # the caller's own: reach the route's code
    sent = case.as_transport_kwargs(base_url=f"http://{service}", headers=headers)
    started = time.monotonic()
    response = forge.request(service, **_httpx_request(sent))
    label = f"{service} {case.operation.label}"
    GENERATED_REQUESTS[label] += 1
    GENERATED_SECONDS[label] += time.monotonic() - started
    GENERATED_ANSWERS[response.status_code] += 1
    if response.status_code == 403:
        reason = str(response.json().get("detail", "")).split("'")[0]  # without the value it names
        GENERATED_REFUSED[f"{label}: {reason}"] += 1
    case.validate_response(response, checks=CHECKS, headers=headers)


def _httpx_request(sent: dict[str, Any]) -> dict[str, Any]:
    """The request schemathesis serialized (for `requests`) as httpx takes it."""
    request: dict[str, Any] = {"method": sent["method"], "url": sent["url"], "params": sent.get("params")}
    # Header values go over the wire as latin-1, as `requests` sends them.
    request["headers"] = {
        name: value.encode("latin-1") if isinstance(value, str) else value
        for name, value in (sent.get("headers") or {}).items()
    }
    if "files" in sent:
        request["files"], request["data"] = sent["files"], sent.get("data")
    elif sent.get("data") is not None:
        body = sent["data"]
        request["content"] = body.encode() if isinstance(body, str) else body
    if sent.get("json") is not None:
        request["json"] = sent["json"]
    if sent.get("cookies"):
        request["headers"]["cookie"] = _cookie_header(sent["cookies"]).encode("latin-1")
    return request


def _cookie_header(cookies: dict[str, Any]) -> str:
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


@APIS["dataset"].parametrize()
def test_the_dataset_api_answers_generated_requests_as_documented(case: Any, forge: Forge) -> None:
    _generated_request(case, forge, "dataset")


@APIS["labeling"].parametrize()
def test_the_labeling_api_answers_generated_requests_as_documented(case: Any, forge: Forge) -> None:
    _generated_request(case, forge, "labeling")


@APIS["training"].parametrize()
def test_the_training_api_answers_generated_requests_as_documented(case: Any, forge: Forge) -> None:
    _generated_request(case, forge, "training")


@APIS["registry"].parametrize()
def test_the_registry_api_answers_generated_requests_as_documented(case: Any, forge: Forge) -> None:
    _generated_request(case, forge, "registry")


@APIS["scheduler"].parametrize()
def test_the_scheduler_api_answers_generated_requests_as_documented(case: Any, forge: Forge) -> None:
    _generated_request(case, forge, "scheduler")


@APIS["delivery"].parametrize()
def test_the_delivery_api_answers_generated_requests_as_documented(case: Any, forge: Forge) -> None:
    _generated_request(case, forge, "delivery")
