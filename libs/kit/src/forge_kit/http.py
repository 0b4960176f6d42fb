"""HTTP edge of a service: FastAPI app factory with problem+json errors, request context, health,
readiness and Prometheus metrics.

- Errors: `ForgeError` subclasses, `IllegalTransition` (409) and validation errors (422, with every
  field's problem in `errors`) become `application/problem+json`; an unexpected exception is logged and
  answered 500 without internals.
- Context: `X-Request-ID` (generated when absent, echoed back), tenant (`X-Forge-Tenant`) and user
  (`X-Forge-User`) are bound to every log line; incoming `traceparent` continues the caller's trace.
- `/healthz`: the process is alive. `/readyz`: each registered dependency check passes (503 otherwise).
  `/metrics`: Prometheus text format.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from forge_contracts.state_machines import IllegalTransition
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from forge_kit.errors import ForgeError
from forge_kit.observability import context_from_traceparent, current_traceparent, logger, tracer

PROBLEM_JSON = "application/problem+json"
ReadinessCheck = Callable[[], Awaitable[None]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

REQUESTS = Counter("forge_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram("forge_http_request_seconds", "HTTP request latency", ["service", "method", "route"])


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _install_error_handlers(app: FastAPI) -> None:
    log = logger(component="http")

    @app.exception_handler(ForgeError)
    async def _forge_error(_: Request, error: ForgeError) -> JSONResponse:
        return problem(error.status, error.title, error.detail)

    @app.exception_handler(IllegalTransition)
    async def _illegal(_: Request, error: IllegalTransition) -> JSONResponse:
        return problem(
            409,
            "Illegal state transition",
            str(error),
            current_state=error.current,
            transition=error.transition,
            allowed=list(error.allowed),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "location": ".".join(str(part) for part in item.get("loc", ())),
                "message": item.get("msg", ""),
                "type": item.get("type", ""),
            }
            for item in error.errors()
        ]
        summary = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:5])
        return problem(422, "Invalid request", summary or "the request is invalid", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(error.status_code, "HTTP error")
        return problem(error.status_code, title, str(error.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("http.unhandled", path=request.url.path, error=repr(error))
        return problem(
            500,
            "Internal error",
            "an unexpected error occurred; see the service log",
            request_id=request.headers.get("x-request-id"),
        )


def _install_context_middleware(app: FastAPI, service: str) -> None:
    @app.middleware("http")
    async def _context(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        structlog.contextvars.bind_contextvars(
            request_id=request_id,
            tenant=request.headers.get("x-forge-tenant"),
            user=request.headers.get("x-forge-user"),
        )
        parent = context_from_traceparent(request.headers.get("traceparent"))
        route = request.url.path
        started = time.perf_counter()
        status = 500
        try:
            with tracer().start_as_current_span(
                f"{request.method} {route}",
                context=parent,
                kind=trace.SpanKind.SERVER,
                attributes={"http.request.method": request.method, "url.path": route},
            ) as span:
                response = await call_next(request)
                status = response.status_code
                span.set_attribute("http.response.status_code", status)
                response.headers["x-request-id"] = request_id
                if traceparent := current_traceparent():
                    response.headers["traceparent"] = traceparent
                return response
        finally:
            matched = request.scope.get("route")
            label = getattr(matched, "path", route)
            REQUESTS.labels(service, request.method, label, str(status)).inc()
            LATENCY.labels(service, request.method, label).observe(time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("request_id", "tenant", "user")


def create_app(
    service: str,
    *,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    lifespan: Lifespan | None = None,
    title: str | None = None,
) -> FastAPI:
    """A FastAPI app with Forge's error format, context, health, readiness and metrics."""
    checks = dict(readiness or {})

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        if lifespan is None:
            yield
            return
        async with lifespan(app):
            yield

    app = FastAPI(title=title or f"Forge {service}", lifespan=_lifespan)
    _install_error_handlers(app)
    _install_context_middleware(app, service)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "a dependency is down"}})
    async def readyz() -> Response:
        failures: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await check()
            except Exception as error:  # any failure means "not ready"; the reason is reported
                failures[name] = f"{type(error).__name__}: {error}"[:300]
        if failures:
            detail = "; ".join(f"{name}: {reason}" for name, reason in failures.items())
            return problem(503, "Not ready", detail, checks={n: failures.get(n, "ok") for n in checks})
        return JSONResponse({"status": "ready", "checks": dict.fromkeys(checks, "ok")})

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
