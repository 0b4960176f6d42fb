"""The readiness ping of Temporal: a transient answer is asked again, a real failure is not hidden.

Pure unit tests: the client is a fake with the one call the ping makes (the real frontend is pinged by
every service's /readyz in the stack tests)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from forge_kit.temporal import ping
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode


class _Frontend:
    def __init__(self, answers: list[bool | RPCError]) -> None:
        self.answers = answers
        self.calls = 0

    async def check_health(self, **_: Any) -> bool:  # takes the ping's per-call timeout
        self.calls += 1
        answer = self.answers[min(self.calls, len(self.answers)) - 1]
        if isinstance(answer, RPCError):
            raise answer
        return answer


def _client(frontend: _Frontend) -> Client:
    class _Fake:
        service_client = frontend

    return cast(Client, _Fake())


async def test_a_cancelled_health_check_is_asked_again_and_then_serves() -> None:
    frontend = _Frontend([RPCError("operation was canceled", RPCStatusCode.CANCELLED, b""), True])
    await ping(_client(frontend), timeout_s=2)
    assert frontend.calls == 2


async def test_a_frontend_that_stays_unavailable_fails_the_ping_by_its_deadline() -> None:
    frontend = _Frontend([RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b"")])
    with pytest.raises(RPCError, match="unavailable"):
        await ping(_client(frontend), timeout_s=0.6)
    assert 2 <= frontend.calls <= 4


async def test_a_permanent_error_is_not_retried() -> None:
    frontend = _Frontend([RPCError("denied", RPCStatusCode.PERMISSION_DENIED, b""), True])
    with pytest.raises(RPCError, match="denied"):
        await ping(_client(frontend), timeout_s=2)
    assert frontend.calls == 1


async def test_a_frontend_answering_not_serving_fails_the_ping() -> None:
    frontend = _Frontend([False])
    with pytest.raises(ConnectionError, match="not serving"):
        await ping(_client(frontend), timeout_s=0.3)
