"""The caller of every request: a verified token turned into a `Principal`.

    @router.get("/datasets")
    async def list_datasets(caller: Annotated[Principal, allow(Action.DATASET_READ)], ...) -> ...:
        ...  # caller.tenant_id, caller.actor, caller.require(Action.X, project_id=...)

- Tokens are OIDC access tokens from the issuer in the settings (Keycloak locally), checked here even
  behind the gateway (defence in depth): signature against the issuer's JWKS (refetched when a token
  names an unknown key, so key rotation works), issuer, audience, expiry.
- Users are resolved through the `Directory` (the scheduler owns tenants, projects and memberships) into
  their roles; `x-forge-tenant` only picks among the caller's own tenants: naming another is a 404, as
  if it did not exist. Inside their own tenant, an action their roles do not allow is a 403.
- Forge's services sign in with their own client-credentials identities (`forge-<service>`) and act in
  the tenant they name, with the actions in `policy.SERVICE_ACTIONS`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, TypeVar

import httpx
import jwt
import structlog
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from forge_kit.errors import ForgeError, NotFound, Unavailable
from forge_kit.policy import SERVICE_ACTIONS, Action, Role, permits
from forge_kit.stack_env import SERVICES

TENANT_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
"""A tenant id: a DNS label."""

SERVICE_CLIENTS: Mapping[str, str] = {f"forge-{name}": name for name in SERVICES}
"""Client ids of Forge's own services (client credentials) -> service name."""


class Unauthorized(ForgeError):
    """No token, or one that is not valid: sign in again."""

    status = 401
    title = "Unauthorized"
    headers: Mapping[str, str] = {"WWW-Authenticate": 'Bearer realm="forge"'}


class Forbidden(ForgeError):
    """The caller is known and in the tenant, but its roles do not allow the action."""

    status = 403
    title = "Forbidden"


class TenantRequired(ForgeError):
    """The caller belongs to several tenants and the route needs one: name it in x-forge-tenant."""

    title = "Tenant required"


@dataclass(frozen=True)
class Membership:
    """A role of a user in a tenant, or in one project of it (`project_id`)."""

    tenant_id: str
    role: Role
    project_id: str | None = None


class Directory(Protocol):
    """Where tenants and memberships live (the scheduler's tables, read locally or over HTTP)."""

    async def memberships(self, username: str) -> Sequence[Membership]: ...

    async def tenant_exists(self, tenant_id: str) -> bool: ...


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (with their roles in the selected tenant) or one of Forge's services."""

    kind: str  # "user" | "service"
    username: str
    subject: str = ""
    service: str | None = None
    platform_admin: bool = False
    tenant: str | None = None
    roles: frozenset[Role] = frozenset()
    project_roles: Mapping[str, frozenset[Role]] = field(default_factory=dict)
    memberships: tuple[Membership, ...] = ()
    on_behalf_of: str | None = None

    @classmethod
    def of_service(
        cls, service: str, tenant: str | None = None, *, on_behalf_of: str | None = None
    ) -> Principal:
        """A service acting itself (activities, consumers: the identity Temporal work runs as), for the
        user who started the work when there is one (`on_behalf_of`, recorded as the actor)."""
        return cls(
            kind="service",
            username=f"service-account-forge-{service}",
            service=service,
            tenant=tenant,
            on_behalf_of=on_behalf_of,
        )

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    @property
    def actor(self) -> str:
        """The name recorded as who did something: a username (also the user a service works for), or
        `service:<name>`."""
        if self.is_service:
            return self.on_behalf_of or f"service:{self.service}"
        return self.username

    @property
    def tenant_id(self) -> str:
        """The selected tenant; a route that needs one has made sure there is one."""
        if self.tenant is None:
            raise TenantRequired("this request needs a tenant: name it in the x-forge-tenant header")
        return self.tenant

    @property
    def tenants(self) -> list[str]:
        """The tenants this user belongs to."""
        return sorted({m.tenant_id for m in self.memberships})

    def roles_for(self, project_id: str | None = None) -> frozenset[Role]:
        """Roles in the selected tenant, plus those granted in `project_id` when one is given."""
        roles = set(self.roles)
        if project_id is not None:
            roles |= self.project_roles.get(project_id, frozenset())
        if self.platform_admin:
            roles.add(Role.PLATFORM_ADMIN)
        return frozenset(roles)

    def may(self, action: Action, project_id: str | None = None) -> bool:
        """Whether the caller may take `action` (in `project_id`, when the resource belongs to one)."""
        if self.is_service:
            return action in SERVICE_ACTIONS
        return permits(self.roles_for(project_id), action)

    def require(self, action: Action, project_id: str | None = None) -> None:
        """Raise 403 unless the caller may take `action`."""
        if not self.may(action, project_id):
            where = f" in project {project_id}" if project_id else ""
            raise Forbidden(f"{self.actor} may not {action}{where} in tenant {self.tenant}")


def _select_tenant(
    username: str, memberships: Sequence[Membership], wanted: str | None
) -> tuple[str | None, frozenset[Role], dict[str, frozenset[Role]]]:
    tenants = sorted({m.tenant_id for m in memberships})
    tenant = wanted if wanted is not None else (tenants[0] if len(tenants) == 1 else None)
    roles = frozenset(m.role for m in memberships if m.tenant_id == tenant and m.project_id is None)
    projects: dict[str, set[Role]] = {}
    for m in memberships:
        if m.tenant_id == tenant and m.project_id is not None:
            projects.setdefault(m.project_id, set()).add(m.role)
    return tenant, roles, {p: frozenset(r) for p, r in projects.items()}


async def member_may(
    directory: Directory, username: str, tenant: str, action: Action, project_id: str | None = None
) -> bool:
    """Whether `username` (somebody other than the caller: the annotator a task is handed to, say) may take
    `action` in `tenant` (in `project_id`, when the resource belongs to one), from their memberships."""
    _, roles, projects = _select_tenant(username, await directory.memberships(username), tenant)
    return permits(roles | (projects.get(project_id, frozenset()) if project_id else frozenset()), action)


class TokenVerifier:
    """Checks access tokens against the issuer's signing keys (JWKS, cached and refetched on rotation)."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        jwks_uri: str | None = None,
        leeway_s: float = 30.0,
        refetch_interval_s: float = 10.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.jwks_uri = jwks_uri or f"{self.issuer}/protocol/openid-connect/certs"
        self.leeway_s = leeway_s
        self.refetch_interval_s = refetch_interval_s
        self._http = http
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _fetch_keys(self) -> None:
        http = self._http or httpx.AsyncClient(timeout=5)
        try:
            response = await http.get(self.jwks_uri)
            response.raise_for_status()
            document = response.json()
        finally:
            if self._http is None:
                await http.aclose()
        keys: dict[str, Any] = {}
        for jwk in document.get("keys", []):
            if jwk.get("use", "sig") != "sig" or "kid" not in jwk:
                continue
            try:
                keys[jwk["kid"]] = jwt.PyJWK(jwk)
            except jwt.PyJWKError:
                continue  # a key type we cannot use (e.g. an encryption key)
        self._keys = keys
        self._fetched_at = time.monotonic()

    async def _key(self, kid: str) -> jwt.PyJWK:
        if kid in self._keys:
            return self._keys[kid]  # type: ignore[no-any-return]
        async with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched_at >= self.refetch_interval_s:
                try:
                    await self._fetch_keys()
                except (httpx.HTTPError, ValueError) as error:
                    raise Unauthorized(f"the token issuer's keys cannot be fetched: {error}") from error
        if kid not in self._keys:
            raise Unauthorized("the token is signed with a key the issuer does not publish")
        return self._keys[kid]  # type: ignore[no-any-return]

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or Unauthorized."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Unauthorized(f"the bearer token is not a JWT: {error}") from error
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("the token names no signing key (kid)")
        key = await self._key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[key.algorithm_name],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iat", "iss", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise Unauthorized(f"the token is not valid: {error}") from error
        return claims


V = TypeVar("V")


class _TTLCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._values: dict[str, tuple[float, Any]] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[V]]) -> V:
        now = time.monotonic()
        hit = self._values.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]  # type: ignore[no-any-return]
        value = await load()
        self._values[key] = (now, value)
        if len(self._values) > 10_000:
            self._values.clear()
        return value


class ClientCredentials:
    """A service's own access token (client-credentials grant), fetched when missing or near expiry."""

    def __init__(
        self, token_url: str, client_id: str, client_secret: str, *, http: httpx.AsyncClient | None = None
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self._http = http
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    RETRY_DELAYS_S = (0.2, 1.0)
    """Waits before the second and third try when the identity provider fails (5xx or no connection): a
    provider whose database just restarted answers 500 on its first requests until its pool reconnects."""

    async def token(self) -> str:
        """A valid access token of this service."""
        async with self._lock:
            if self._token is None or time.monotonic() > self._expires_at - 30:
                body = await self._fetch()
                self._token = str(body["access_token"])
                self._expires_at = time.monotonic() + float(body.get("expires_in", 60))
            return self._token

    async def _fetch(self) -> dict[str, Any]:
        for delay in self.RETRY_DELAYS_S:
            try:
                response = await self._post()
                if response.status_code < 500:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(delay)
        else:
            response = await self._post()  # the last try: its error is the caller's
        response.raise_for_status()  # a 4xx (wrong secret) is not retried
        return dict(response.json())

    async def _post(self) -> httpx.Response:
        form = {"grant_type": "client_credentials"}
        if self._http is not None:
            return await self._http.post(self.token_url, data=form, auth=(self.client_id, self.client_secret))
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.post(self.token_url, data=form, auth=(self.client_id, self.client_secret))


class HttpDirectory:
    """The scheduler's directory over HTTP, as this service's own identity, cached for `ttl_s`
    (a membership granted or revoked elsewhere is seen here within that time)."""

    def __init__(self, base_url: str, credentials: ClientCredentials, *, ttl_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self._memberships = _TTLCache(ttl_s)
        self._tenants = _TTLCache(ttl_s)

    async def _get(self, path: str) -> httpx.Response:
        try:
            token = await self.credentials.token()
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.get(
                    f"{self.base_url}{path}", headers={"authorization": f"Bearer {token}"}
                )
        except httpx.HTTPError as error:
            raise Unavailable(f"the directory cannot be reached to resolve the caller: {error}") from error
        if response.status_code not in (200, 404):
            raise Unavailable(f"the directory answered {response.status_code} resolving the caller")
        return response

    async def memberships(self, username: str) -> Sequence[Membership]:
        async def load() -> tuple[Membership, ...]:
            response = await self._get(f"/directory/users/{username}")
            response.raise_for_status()
            return tuple(
                Membership(m["tenant_id"], Role(m["role"]), m.get("project_id"))
                for m in response.json()["memberships"]
            )

        return await self._memberships.get(username, load)

    async def tenant_exists(self, tenant_id: str) -> bool:
        async def load() -> bool:
            response = await self._get(f"/directory/tenants/{tenant_id}")
            if response.status_code == 404:
                return False
            response.raise_for_status()
            return True

        return await self._tenants.get(tenant_id, load)


class Authenticator:
    """Turns a bearer token and the x-forge-tenant header into a Principal."""

    def __init__(self, verifier: TokenVerifier, directory: Directory) -> None:
        self.verifier = verifier
        self.directory = directory

    async def principal(
        self, token: str | None, tenant: str | None, on_behalf_of: str | None = None
    ) -> Principal:
        """The caller of a request. `on_behalf_of` is honoured for Forge's services only: the user a
        service works for, recorded as the actor."""
        if not token:
            raise Unauthorized("this route needs a bearer token (sign in: `forge login`)")
        claims = await self.verifier.verify(token)
        username = str(claims.get("preferred_username") or claims["sub"])
        client_id = str(claims.get("azp") or claims.get("client_id") or "")
        service = SERVICE_CLIENTS.get(client_id)
        if service is not None and username == f"service-account-{client_id}":
            return Principal(
                kind="service",
                username=username,
                subject=claims["sub"],
                service=service,
                tenant=tenant,
                on_behalf_of=on_behalf_of,
            )
        realm_roles = (claims.get("realm_access") or {}).get("roles") or []
        platform_admin = Role.PLATFORM_ADMIN.value in realm_roles
        memberships = tuple(await self.directory.memberships(username))
        if tenant is not None and tenant not in {m.tenant_id for m in memberships}:
            if not (platform_admin and await self.directory.tenant_exists(tenant)):
                raise NotFound(f"tenant '{tenant}' does not exist")
        selected, roles, project_roles = _select_tenant(username, memberships, tenant)
        return Principal(
            kind="user",
            username=username,
            subject=str(claims["sub"]),
            platform_admin=platform_admin,
            tenant=selected,
            roles=roles,
            project_roles=project_roles,
            memberships=memberships,
        )


_bearer = HTTPBearer(auto_error=False, description="An OIDC access token from Forge's identity provider.")


class _Allow:
    """The dependency behind `allow`: authenticates, selects the tenant, checks the action."""

    def __init__(self, action: Action, *, tenant: bool) -> None:
        self.action = action
        self.needs_tenant = tenant

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        x_forge_tenant: Annotated[
            str | None,
            Header(
                alias="x-forge-tenant",
                pattern=TENANT_PATTERN,
                description="Which of the caller's tenants the request acts in (needed when it has several).",
            ),
        ] = None,
        x_forge_on_behalf_of: Annotated[
            str | None,
            Header(
                alias="x-forge-on-behalf-of",
                max_length=256,
                description="Forge's services only: the user the call is made for (recorded as the actor).",
            ),
        ] = None,
    ) -> Principal:
        authenticator: Authenticator = request.app.state.authenticator
        token = credentials.credentials if credentials is not None else None
        in_path = request.path_params.get("tenant_id")
        if in_path is not None and x_forge_tenant is not None and in_path != x_forge_tenant:
            raise ForgeError(f"the path names tenant '{in_path}' but x-forge-tenant names '{x_forge_tenant}'")
        principal = await authenticator.principal(token, in_path or x_forge_tenant, x_forge_on_behalf_of)
        structlog.contextvars.bind_contextvars(user=principal.actor, tenant=principal.tenant)
        request.state.principal = principal
        if self.needs_tenant and principal.tenant is None:
            known = ", ".join(principal.tenants) or "none yet: ask a tenant admin"
            raise TenantRequired(f"name the tenant in the x-forge-tenant header (yours: {known})")
        principal.require(self.action)
        return principal


def allow(action: Action, *, tenant: bool = True) -> Any:
    """FastAPI dependency: the verified caller, allowed to take `action` in its selected tenant.

    `tenant=False` for routes outside any tenant (creating tenants, the caller's own profile). Routes on
    a resource of a Forge project check again with `caller.require(action, project_id=...)`."""
    return Depends(_Allow(action, tenant=tenant))


def route_action(dependant_calls: Sequence[Any]) -> Action | None:
    """The action a route requires, from the callables of its dependencies (for the OpenAPI and tests)."""
    for call in dependant_calls:
        if isinstance(call, _Allow):
            return call.action
    return None


def _calls(dependant: Any) -> list[Any]:
    found = []
    for dependency in dependant.dependencies:
        found.append(dependency.call)
        found.extend(_calls(dependency))
    return found


PUBLIC_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
"""Operations routes that answer without a token (liveness, readiness, metrics, the API's own docs)."""


def document_routes(router: Any) -> None:
    """Name each route's required action in its OpenAPI operation (`x-forge-action`). Call it on a router
    before it is included. Fails the start when a route has no action: every route but the operations
    ones must take the kit's principal."""
    from fastapi.routing import APIRoute

    missing = []
    for route in router.routes:
        if not isinstance(route, APIRoute) or route.path in PUBLIC_PATHS:
            continue
        action = route_action(_calls(route.dependant))
        if action is None:
            missing.append(f"{sorted(route.methods or ())} {route.path}")
            continue
        route.openapi_extra = {**(route.openapi_extra or {}), "x-forge-action": action.value}
    if missing:
        raise RuntimeError(
            "routes without an authorised caller (use forge_kit.auth.allow): " + ", ".join(missing)
        )
