"""The kit's caller: token checks, tenant selection and the policy, as pure units (keys made here, the
issuer's JWKS answered in memory). The real Keycloak is exercised in tests/stack and every service test."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from forge_kit.auth import (
    Authenticator,
    ClientCredentials,
    Forbidden,
    Membership,
    Principal,
    TokenVerifier,
    Unauthorized,
)
from forge_kit.errors import NotFound
from forge_kit.policy import POLICY, SERVICE_ONLY, Action, Role, permission_matrix, permits

ISSUER = "http://idp.test/realms/forge"


class Keys:
    """An issuer's signing keys; `rotate` publishes a new one and drops the old."""

    def __init__(self) -> None:
        self.generation = 0
        self.fetches = 0
        self.rotate()

    def rotate(self) -> None:
        self.generation += 1
        self.kid = f"key-{self.generation}"
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def sign(self, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": "forge", "sub": "u-1", "iat": now, "exp": now + 300, **claims}
        return jwt.encode(body, self.private, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def verifier(keys: Keys) -> TokenVerifier:
    def answer(request: httpx.Request) -> httpx.Response:
        keys.fetches += 1
        return httpx.Response(200, json=keys.jwks())

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return TokenVerifier(ISSUER, "forge", http=http, refetch_interval_s=0)


class Memberships:
    def __init__(self, grants: dict[str, Sequence[Membership]], tenants: set[str]) -> None:
        self.grants = grants
        self.tenants = tenants

    async def memberships(self, username: str) -> Sequence[Membership]:
        return self.grants.get(username, ())

    async def tenant_exists(self, tenant_id: str) -> bool:
        return tenant_id in self.tenants


DIRECTORY = Memberships(
    {
        "lin": [Membership("acme", Role.ML_ENGINEER), Membership("acme", Role.PROJECT_ADMIN, "p-1")],
        "bo": [Membership("acme", Role.VIEWER), Membership("globex", Role.ANNOTATOR)],
    },
    {"acme", "globex", "initech"},
)


async def test_a_valid_token_gives_its_claims(keys: Keys, verifier: TokenVerifier) -> None:
    claims = await verifier.verify(keys.sign(preferred_username="lin"))
    assert claims["preferred_username"] == "lin"


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 3600},
        {"aud": "account"},
        {"iss": "http://elsewhere/realms/forge"},
    ],
    ids=["expired", "wrong-audience", "wrong-issuer"],
)
async def test_tokens_that_are_not_for_forge_are_refused(
    keys: Keys, verifier: TokenVerifier, claims: dict[str, Any]
) -> None:
    with pytest.raises(Unauthorized):
        await verifier.verify(keys.sign(**claims))


async def test_a_tampered_token_is_refused(keys: Keys, verifier: TokenVerifier) -> None:
    head, _, signature = keys.sign().split(".")
    forged = jwt.encode({"sub": "admin", "iss": ISSUER, "aud": "forge"}, "x" * 32, algorithm="HS256").split(
        "."
    )[1]
    with pytest.raises(Unauthorized):
        await verifier.verify(f"{head}.{forged}.{signature}")
    with pytest.raises(Unauthorized):
        await verifier.verify("not-a-jwt")


async def test_a_rotated_signing_key_is_fetched_when_a_token_names_it(
    keys: Keys, verifier: TokenVerifier
) -> None:
    await verifier.verify(keys.sign())
    keys.rotate()
    claims = await verifier.verify(keys.sign(sub="after-rotation"))
    assert claims["sub"] == "after-rotation" and keys.fetches == 2


async def test_a_key_nobody_published_is_refused(keys: Keys, verifier: TokenVerifier) -> None:
    stranger = Keys()
    with pytest.raises(Unauthorized):
        await verifier.verify(stranger.sign())


async def test_the_only_tenant_is_selected_and_its_roles_resolved(
    keys: Keys, verifier: TokenVerifier
) -> None:
    caller = await Authenticator(verifier, DIRECTORY).principal(keys.sign(preferred_username="lin"), None)
    assert caller.tenant == "acme" and caller.roles == {Role.ML_ENGINEER}
    assert caller.may(Action.TRAINING_RUN) and not caller.may(Action.REGISTRY_GATE)
    assert caller.may(Action.REGISTRY_GATE, project_id="p-1")


async def test_another_tenant_is_not_found_and_a_missing_role_is_forbidden(
    keys: Keys, verifier: TokenVerifier
) -> None:
    authenticator = Authenticator(verifier, DIRECTORY)
    with pytest.raises(NotFound):
        await authenticator.principal(keys.sign(preferred_username="lin"), "globex")
    with pytest.raises(NotFound):
        await authenticator.principal(keys.sign(preferred_username="lin"), "no-such-tenant")
    viewer = await authenticator.principal(keys.sign(preferred_username="bo"), "acme")
    with pytest.raises(Forbidden):
        viewer.require(Action.DATASET_WRITE)


async def test_a_user_of_several_tenants_must_name_one(keys: Keys, verifier: TokenVerifier) -> None:
    caller = await Authenticator(verifier, DIRECTORY).principal(keys.sign(preferred_username="bo"), None)
    assert caller.tenant is None and caller.tenants == ["acme", "globex"]


async def test_a_platform_admin_reaches_existing_tenants_only(keys: Keys, verifier: TokenVerifier) -> None:
    authenticator = Authenticator(verifier, DIRECTORY)
    token = keys.sign(preferred_username="ada", realm_access={"roles": ["platform-admin"]})
    admin = await authenticator.principal(token, "initech")
    assert admin.may(Action.SCHEDULER_QUOTA_MANAGE) and not admin.may(Action.REGISTRY_APPROVE)
    with pytest.raises(NotFound):
        await authenticator.principal(token, "nowhere")


async def test_only_a_forge_service_account_is_a_service(keys: Keys, verifier: TokenVerifier) -> None:
    authenticator = Authenticator(verifier, DIRECTORY)
    service = await authenticator.principal(
        keys.sign(azp="forge-training", preferred_username="service-account-forge-training"), "acme"
    )
    assert service.is_service and service.may(Action.REGISTRY_EVALUATE)
    assert not service.may(Action.REGISTRY_APPROVE)
    # A user who calls themselves like a service account through another client stays a user.
    pretender = await authenticator.principal(
        keys.sign(azp="forge-cli", preferred_username="service-account-forge-training"), None
    )
    assert not pretender.is_service and not pretender.may(Action.REGISTRY_EVALUATE)


async def test_no_token_is_unauthorized(verifier: TokenVerifier) -> None:
    with pytest.raises(Unauthorized):
        await Authenticator(verifier, DIRECTORY).principal(None, "acme")


def test_no_user_role_holds_a_service_only_action() -> None:
    assert all(not (POLICY[role] & SERVICE_ONLY) for role in Role)
    assert permits([Role.RELEASE_APPROVER], Action.REGISTRY_APPROVE)
    assert not permits([Role.ML_ENGINEER], Action.REGISTRY_APPROVE)
    assert not permits([Role.ANNOTATOR], Action.LABELING_REVIEW)


def test_the_matrix_has_a_row_per_action() -> None:
    matrix = permission_matrix()
    assert all(f"`{action}`" in matrix for action in Action)


def test_a_service_principal_acts_in_the_tenant_it_names() -> None:
    caller = Principal.of_service("registry", tenant="acme")
    assert caller.actor == "service:registry" and caller.tenant_id == "acme"


def test_docs_security_shows_the_policy_as_it_is() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    shown = page.split("<!-- matrix:begin -->\n", 1)[1].split("\n<!-- matrix:end -->", 1)[0]
    assert shown.strip() == permission_matrix().strip(), "regenerate: uv run python -m forge_kit.policy"


def _token_server(answers: list[int]) -> tuple[httpx.AsyncClient, list[int]]:
    """A token endpoint answering with the given statuses in turn (then 200), and the statuses it gave."""
    given: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        status = answers.pop(0) if answers else 200
        given.append(status)
        if status != 200:
            return httpx.Response(status, json={"error": "server_error"})
        return httpx.Response(200, json={"access_token": f"token-{len(given)}", "expires_in": 300})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer)), given


async def test_a_service_token_survives_an_identity_provider_failing_its_first_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ClientCredentials, "RETRY_DELAYS_S", (0.0, 0.0))
    http, given = _token_server([500, 503])
    credentials = ClientCredentials("http://idp/token", "forge-dataset", "secret", http=http)
    assert await credentials.token() == "token-3"
    assert given == [500, 503, 200]
    assert await credentials.token() == "token-3"  # cached: no fourth request
    assert len(given) == 3


async def test_a_service_token_refused_or_failing_throughout_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ClientCredentials, "RETRY_DELAYS_S", (0.0, 0.0))
    http, given = _token_server([401])
    with pytest.raises(httpx.HTTPStatusError):
        await ClientCredentials("http://idp/token", "forge-dataset", "wrong", http=http).token()
    assert given == [401]  # a wrong secret is not retried
    http, given = _token_server([500, 500, 500])
    with pytest.raises(httpx.HTTPStatusError):
        await ClientCredentials("http://idp/token", "forge-dataset", "secret", http=http).token()
    assert given == [500, 500, 500]
