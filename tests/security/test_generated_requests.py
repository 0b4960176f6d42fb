"""Generated requests against every operation of every service (schemathesis: examples, the coverage
phase's boundary cases and a few fuzzed cases each, positive and negative, the same ones every run):
no server errors, and every response as the OpenAPI documents it.

Each request is signed in as a caller allowed the operation's action (a user with every tenant role,
a service identity for service-only routes, the platform admin for platform-only ones), in a fresh
tenant. How many fuzzed cases per operation: FORGE_SCHEMATHESIS_EXAMPLES (12 by default)."""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from forge_kit.policy import Action
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.security.conftest import GENERATED_REQUESTS, Forge, documented_apis

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20240601,
        "generation": {
            "max-examples": int(os.environ.get("FORGE_SCHEMATHESIS_EXAMPLES", "12")),
            "deterministic": True,
            "database": "none",
            "no-shrink": True,
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
)
"""Bounded for a 2-core CI: the coverage phase's boundary cases and a dozen fuzzed cases per operation,
the same ones every run (derandomized, a fixed seed, no example database, no shrinking)."""

APIS = {
    service: schemathesis.openapi.from_dict(doc, config=CONFIG) for service, doc in documented_apis().items()
}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _generated_request(case: Any, forge: Forge, service: str) -> None:
    action = case.operation.definition.raw.get("x-forge-action")  # none: operations routes (/readyz)
    headers = dict(forge.people.for_action(Action(action))) if action else {}
    if case.path_parameters and "tenant_id" in case.path_parameters:
        case.path_parameters["tenant_id"] = forge.people.tenant  # the caller's own: reach the route's code
    GENERATED_REQUESTS[service] += 1
    sent = case.as_transport_kwargs(base_url=f"http://{service}", headers=headers)
    response = forge.request(service, **_httpx_request(sent))
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
