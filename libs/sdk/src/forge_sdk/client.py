"""Talking to Forge's services through the gateway (`<gateway>/api/<service>`) as a signed-in caller.

Every request carries the caller's headers read afresh (the bearer token renewed before it expires, the
tenant). An answer of 400 or above raises `ApiError` with the problem's `status`, `title` and `detail`
(RFC 9457). Requests that may be sent twice are retried on a lost connection or a 502/503/504, with
backoff: reads and PUTs always, POSTs when the caller says they are idempotent (Forge's task-creating
POSTs are: an identical request answers with the same task).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from forge_sdk import auth

if TYPE_CHECKING:
    from forge_sdk.chains import Chains
    from forge_sdk.datasets import Datasets
    from forge_sdk.jobs import Jobs
    from forge_sdk.models import Models

RETRY_STATUSES = frozenset({502, 503, 504})
SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})


class ApiError(RuntimeError):
    """A request Forge refused (or could not serve): the problem's status, title and detail."""

    def __init__(
        self, status: int, detail: str, title: str = "", problem: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail, self.title = status, detail, title
        self.problem = dict(problem or {})


class NotSignedIn(ApiError):
    """There is no saved session (`forge login` first), or it can no longer be renewed."""

    def __init__(self, detail: str = "not signed in: `forge login`") -> None:
        super().__init__(401, detail, "Not signed in")


def _local_stack() -> dict[str, str]:
    """The local stack's endpoints file (`forge up` writes it), when the platform's packages are here."""
    try:
        from forge_kit.stack_env import env_file_path, read_env_file
    except ImportError:  # the SDK on its own: give the gateway explicitly
        return {}
    return read_env_file(env_file_path())


class Service:
    """One service's API: `get`, `post`, `put`, `delete` answer with the parsed JSON body."""

    def __init__(self, http: httpx.Client, headers: Mapping[str, str], *, retries: int = 3) -> None:
        self.http, self.headers, self.retries = http, headers, retries

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = 120.0,
        **kwargs: Any,
    ) -> Any:
        """`idempotent=True` on a POST: it is sent with an `Idempotency-Key` (`idempotency_key`, or a new
        one for this call) that every retry repeats, so the service answers a retry with what the first
        attempt made (routes that take the header: POST /chains, POST /delivery-orders; task-creating
        POSTs of the dataset service answer an identical request with the same task anyway)."""
        again = method in SAFE_METHODS if idempotent is None else idempotent
        if kwargs.get("content") is not None and not isinstance(kwargs["content"], bytes | str):
            again = False  # a stream cannot be sent twice
        headers = dict(self.headers)
        if method == "POST" and (idempotent or idempotency_key is not None):
            headers["idempotency-key"] = idempotency_key or str(uuid.uuid4())
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.http.request(method, path, headers=headers, timeout=timeout, **kwargs)
            except httpx.TransportError:
                if not again or attempt > self.retries:
                    raise
                time.sleep(min(0.5 * 2**attempt, 8.0))
                continue
            if response.status_code in RETRY_STATUSES and again and attempt <= self.retries:
                time.sleep(min(0.5 * 2**attempt, 8.0))
                continue
            return _answer(response)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    def pages(self, path: str, *, params: Mapping[str, Any] | None = None, limit: int = 100) -> Iterator[Any]:
        """Every item of a paged list (`{"items", "next_offset"}`, asked by `offset`/`limit`), page by page;
        a plain list is one page."""
        offset: int | None = 0
        while offset is not None:
            page = self.get(path, params={**(params or {}), "offset": offset, "limit": limit})
            if isinstance(page, list):
                yield from page
                return
            yield from page["items"]
            offset = page.get("next_offset")


def _answer(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        detail = problem.get("detail") if isinstance(problem, dict) else None
        raise ApiError(
            response.status_code,
            str(detail or response.text or response.reason_phrase),
            str(problem.get("title", "")) if isinstance(problem, dict) else "",
            problem if isinstance(problem, dict) else None,
        )
    return response.json() if response.content else None


class Forge:
    """The platform as one caller sees it: `forge.service("dataset")`, `forge.datasets`."""

    def __init__(
        self,
        headers: Mapping[str, str],
        *,
        gateway: str | None = None,
        urls: Mapping[str, str] | None = None,
        retries: int = 3,
    ) -> None:
        self.headers = headers
        self.gateway = gateway
        self.urls = dict(urls or {})
        self.retries = retries
        self._clients: dict[str, httpx.Client] = {}

    @classmethod
    def signed_in(cls, tenant: str | None = None, *, gateway: str | None = None) -> Forge:
        """The session `forge login` saved (renewed as it nears expiry), acting in `tenant`."""
        tokens = auth.load()
        if tokens is None:
            raise NotSignedIn()
        local = _local_stack()
        services = {
            k[6:-4].lower(): v for k, v in local.items() if k.startswith("FORGE_") and k.endswith("_URL")
        }
        return cls(
            auth.SignedIn(tokens, tenant),
            gateway=gateway or os.environ.get("FORGE_GATEWAY_URL") or local.get("FORGE_GATEWAY_URL"),
            urls=services,
        )

    def base_url(self, name: str) -> str:
        """`FORGE_<NAME>_URL` from the environment, else the gateway's `/api/<name>`, else the address
        given for it (the local stack's, without a gateway)."""
        if url := os.environ.get(f"FORGE_{name.upper()}_URL"):
            return url
        if self.gateway:
            return f"{self.gateway.rstrip('/')}/api/{name}"
        if url := self.urls.get(name):
            return url
        raise ApiError(503, f"no address for the {name} service: is the platform up (`forge up`)?")

    def service(self, name: str) -> Service:
        if name not in self._clients:
            self._clients[name] = httpx.Client(base_url=self.base_url(name), timeout=120)
        return Service(self._clients[name], self.headers, retries=self.retries)

    @property
    def datasets(self) -> Datasets:
        from forge_sdk.datasets import Datasets

        return Datasets(self.service("dataset"))

    @property
    def jobs(self) -> Jobs:
        """Training jobs (the training service's `/training-jobs`)."""
        from forge_sdk.jobs import Jobs

        return Jobs(self.service("training"))

    @property
    def models(self) -> Models:
        """Model projects, versions and the base-model hub (the registry)."""
        from forge_sdk.models import Models

        return Models(self.service("registry"))

    @property
    def chains(self) -> Chains:
        """Model chains, dataset version to delivered bundle (the training service's `/chains`)."""
        from forge_sdk.chains import Chains

        return Chains(self.service("training"))

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


__all__ = ["ApiError", "Forge", "NotSignedIn", "Service"]
