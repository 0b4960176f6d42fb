"""Every operation of every service, called by every role: a 403 exactly where the policy says no, 401
without a token, 404 for another tenant's user, and the service actions open to Forge's services.

The operations walked are tests/security/routes.json; `test_the_matrix_covers_every_route` fails when
the apps' OpenAPI has an operation the file lacks (or the other way round). Regenerate it with
`FORGE_UPDATE_ROUTES=1 uv run --frozen pytest tests/security/test_access_matrix.py -k covers_every_route`
and review the diff: each new row is a route the matrix now checks.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from forge_kit.policy import SERVICE_ACTIONS, SERVICE_ONLY, Action, Role, permits

from tests.security.conftest import (
    ROUTES_FILE,
    UPDATE_ROUTES_ENV,
    Forge,
    Route,
    checked_in_routes,
    documented_apis,
    openapi_routes,
    write_routes,
)

DUMMY_ID = str(uuid.uuid4())
ROUTES = checked_in_routes()


def test_the_matrix_covers_every_route() -> None:
    served = openapi_routes(documented_apis())
    if os.environ.get(UPDATE_ROUTES_ENV):
        write_routes(served)
    checked_in = checked_in_routes()
    missing = sorted({r.label for r in served} - {r.label for r in checked_in})
    stale = sorted({r.label for r in checked_in} - {r.label for r in served})
    actions = {r.label: r.action for r in checked_in}
    changed = sorted(r.label for r in served if r.label in actions and actions[r.label] != r.action)
    assert not (missing or stale or changed), (
        f"{ROUTES_FILE.name} is out of date: not in it {missing}, gone from the apps {stale}, action changed "
        f"{changed}. Regenerate it with {UPDATE_ROUTES_ENV}=1 uv run --frozen pytest "
        f"tests/security/test_access_matrix.py -k covers_every_route, and review the diff"
    )


def _path(route: Route, tenant: str) -> str:
    """The route's path with dummy parameters: the tenant named in the request, a user nobody has, a
    random id for the rest."""
    values = {"tenant_id": tenant, "username": "sec-nobody", "filename": "notes.jsonl"}
    path = route.path
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        name = path[start + 1 : end]
        path = path[:start] + values.get(name, DUMMY_ID) + path[end + 1 :]
    return path


def _call(forge: Forge, route: Route, headers: Mapping[str, str], tenant: str) -> Any:
    operation = forge.apps[route.service].openapi()["paths"][route.path][route.method.lower()]
    body: dict[str, Any] = {"json": {}} if "requestBody" in operation else {}
    return forge.request(route.service, route.method, _path(route, tenant), headers=dict(headers), **body)


def _expected_for(roles: list[Role], action: Action) -> str:
    return "allowed" if permits(roles, action) else "403"


def _seen(status: int) -> str:
    if status == 403:
        return "403"
    if status == 401:
        return "401"
    return "allowed"


@pytest.mark.parametrize("route", ROUTES, ids=[r.label for r in ROUTES])
def test_each_role_gets_exactly_what_the_policy_allows(forge: Forge, route: Route) -> None:
    action = Action(route.action)
    people = forge.people
    wrong: list[str] = []
    for role, caller in people.by_role.items():
        response = _call(forge, route, caller, people.tenant)
        expected = "403" if action in SERVICE_ONLY else _expected_for([role], action)
        if _seen(response.status_code) != expected:
            wrong.append(f"{role}: expected {expected}, got {response.status_code} {response.text[:300]}")
    assert not wrong, f"{route.label} ({action}):\n" + "\n".join(wrong)


@pytest.mark.parametrize("route", ROUTES, ids=[r.label for r in ROUTES])
def test_a_request_without_a_token_is_unauthorized(forge: Forge, route: Route) -> None:
    response = _call(forge, route, {"x-forge-tenant": forge.people.tenant}, forge.people.tenant)

    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("route", ROUTES, ids=[r.label for r in ROUTES])
def test_naming_a_tenant_one_is_not_in_is_not_found(forge: Forge, route: Route) -> None:
    people = forge.people
    outsider = people.outsider.in_tenant(people.tenant)

    response = _call(forge, route, outsider, people.tenant)

    assert response.status_code == 404, response.text


@pytest.mark.parametrize("route", ROUTES, ids=[r.label for r in ROUTES])
def test_a_service_identity_may_take_the_service_actions(forge: Forge, route: Route) -> None:
    action = Action(route.action)

    response = _call(forge, route, forge.people.service, forge.people.tenant)

    if action in SERVICE_ACTIONS:
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == 403, response.text
