"""Typed domain errors, mapped once at the HTTP edge to problem+json (RFC 9457)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType


class ForgeError(Exception):
    """A failure a caller can act on; `status` is the HTTP status it maps to, `headers` go with the
    response (e.g. `WWW-Authenticate` on a 401)."""

    status: int = 400
    title: str = "Bad request"
    headers: Mapping[str, str] = MappingProxyType({})

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(ForgeError):
    """The request is well-formed but asks for something that makes no sense."""


class Unprocessable(ForgeError):
    """The request is well-formed but its content cannot be carried out as it stands: a bad record, a name
    it may not use, a value contradicting what the service recorded (422, like a bad field)."""

    status = 422
    title = "Unprocessable content"


class NotFound(ForgeError):
    """The resource does not exist, or the caller's tenant may not see it."""

    status = 404
    title = "Not found"


class Conflict(ForgeError):
    """The request conflicts with the resource's current state."""

    status = 409
    title = "Conflict"


class Unavailable(ForgeError):
    """A dependency (database, broker, workflow engine) cannot be reached right now."""

    status = 503
    title = "Service unavailable"
