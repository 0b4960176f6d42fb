"""A service of the SDK whose server is an httpx mock transport: the SDK's own code under test, every
request it sent kept in order."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from forge_sdk import Service

Handler = Callable[[httpx.Request], httpx.Response]


def mock_service(
    handler: Handler, *, base_url: str = "http://forge/api/x", retries: int = 0
) -> tuple[Service, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    http = httpx.Client(base_url=base_url, transport=httpx.MockTransport(record))
    return Service(http, {"authorization": "Bearer t", "x-forge-tenant": "acme"}, retries=retries), seen
