"""HTTP edge of a service: FastAPI app factory with input guards, problem+json errors, request context,
health, readiness and Prometheus metrics, in one place so that no service can forget one.

- Guards, before any route runs: a NUL character (raw, `%00` or `\\u0000`) anywhere in the path, the query,
  a header or a JSON body, and the JSON constants `NaN`/`Infinity` (or a number too large for a float), are
  a 422 problem. Only routes that take a JSON body model have their body read here (it is replayed to the
  route); uploads and streams pass untouched and unbuffered.
- Errors: `ForgeError` subclasses (with their `headers`), `IllegalTransition` (409), validation errors (422,
  with every field's problem in `errors`) and HTTP errors become `application/problem+json`; a 405 names
  every method the path allows in `Allow`. An unexpected exception is logged (with the request id and
  whatever the request bound to the log context, e.g. the caller's tenant) and answered 500 without
  internals, on a connection that stays open.
- Context: every response carries `X-Request-ID` (the caller's when it is a sane token, else generated),
  problems carry it as `request_id`, and it is bound to every log line of the request; the log context is
  restored when the request ends. An incoming `traceparent` continues the caller's trace.
- `/healthz`: the process is alive. `/readyz`: each registered dependency check passes (503 otherwise).
  `/metrics`: Prometheus text format, labelled by route template (`unmatched` when no route matched), never
  by the raw path.
- OpenAPI: every operation documents its problem responses with the `Problem` schema; free strings say
  they hold no NUL, and number bounds are JSON Schema's `minimum`/`maximum` (`no_nul_strings`,
  `standard_bounds`), so that a fuzzer's "valid" input is what the edge accepts.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from forge_contracts.state_machines import IllegalTransition
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from forge_kit.errors import ForgeError
from forge_kit.observability import context_from_traceparent, current_traceparent, logger, tracer
from forge_kit.types import NO_NUL

PROBLEM_JSON = "application/problem+json"
UNMATCHED = "unmatched"
"""The metrics' route label of a request that matched no route."""
ReadinessCheck = Callable[[], Awaitable[None]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

REQUESTS = Counter("forge_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram("forge_http_request_seconds", "HTTP request latency", ["service", "method", "route"])

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
_request_id: ContextVar[str | None] = ContextVar("forge_request_id", default=None)
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


def current_request_id() -> str | None:
    """The id of the request being served (None outside a request)."""
    return _request_id.get()


class ProblemFieldError(BaseModel):
    """One thing wrong with the request."""

    location: str = Field(
        description="Where: `body.<field>`, `query.<name>`, `path.<name>`, `header.<name>`."
    )
    message: str
    type: str = Field(description="A machine-readable kind, e.g. `int_type`, `missing`, `nul_character`.")


class Problem(BaseModel):
    """An RFC 9457 problem: what every error response of a Forge service carries."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(default="about:blank", description="A URI naming the kind of problem.")
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(description="The HTTP status.")
    detail: str = Field(description="What went wrong with this request, for people.")
    request_id: str | None = Field(
        default=None, description="The request's X-Request-ID (give it to support)."
    )
    errors: list[ProblemFieldError] | None = Field(
        default=None, description="For 422: every problem found in the request."
    )


def problem(
    status: int, title: str, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """An RFC 9457 problem response; it carries the current request's id as `request_id`."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    if (request_id := _request_id.get()) is not None:
        body.setdefault("request_id", request_id)
    return JSONResponse(
        body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers) if headers else None
    )


def _invalid(location: str, message: str, kind: str) -> JSONResponse:
    error = {"location": location, "message": message, "type": kind}
    return problem(422, "Invalid request", f"{location}: {message}", errors=[error])


# ----------------------------------------------------------------------------------------- error handlers


def _install_error_handlers(app: FastAPI) -> None:
    log = logger(component="http")

    @app.exception_handler(ForgeError)
    async def _forge_error(_: Request, error: ForgeError) -> JSONResponse:
        return problem(error.status, error.title, error.detail, headers=error.headers)

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
    async def _invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
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
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request.app.router.routes, request.scope))
        title = _TITLES.get(error.status_code) or _phrase(error.status_code)
        return problem(error.status_code, title, str(error.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        # Only reached for errors outside the edge middleware (which answers everything inside it).
        log.exception("http.unhandled", path=request.url.path[:300], error=repr(error)[:1000])
        return problem(500, "Internal error", "an unexpected error occurred; see the service log")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "HTTP error"


def _allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route serves on this path."""
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


# ------------------------------------------------------------------------------------------- the edge


def _match(routes: Iterable[BaseRoute], scope: Scope) -> tuple[BaseRoute | None, bool]:
    """The route the router will pick for `scope`, and whether it matched fully (not only the path)."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route, True
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial, False


def _takes_json_body(route: BaseRoute | None) -> bool:
    if not isinstance(route, APIRoute) or route.body_field is None:
        return False
    return not isinstance(route.body_field.field_info, params.Form)  # forms and files are not JSON


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return True  # a route without strict content types parses it as JSON
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def _request_id_of(scope: Scope) -> str:
    given = _header(scope, b"x-request-id")
    if given is not None:
        text = given.decode("latin-1")
        if _REQUEST_ID.fullmatch(text):
            return text
    return str(uuid.uuid4())


def _nul_outside_body(scope: Scope) -> str | None:
    """Where a NUL is in the request line or headers, if anywhere."""
    if "\x00" in scope.get("path", ""):
        return "path"
    query = scope.get("query_string", b"")
    if b"\x00" in query or b"%00" in query:
        return "query"
    for name, value in scope.get("headers", ()):
        if b"\x00" in value or b"\x00" in name:
            return f"header.{bytes(name).decode('latin-1').replace(chr(0), '')}"
    return None


class _NonFinite(Exception):
    """A JSON number that is not a finite float."""


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NonFinite(f"{text[:40]} is out of range for a float")
    return value


def _nul_in_json(value: Any) -> str | None:
    """Where a string holding NUL is in a parsed JSON document (keys included), if anywhere."""
    stack: list[tuple[str, Any]] = [("body", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return where
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    return f"{where}.{key.replace(chr(0), '')}"
                stack.append((f"{where}.{key}", child))
        elif isinstance(item, list):
            stack.extend((f"{where}.{index}", child) for index, child in enumerate(item))
    return None


def _refuse_json(body: bytes) -> JSONResponse | None:
    """A 422 for a JSON body with NUL or a non-finite number; None when it has neither (or is no JSON at
    all: the route's own parsing reports that)."""
    if b"\x00" in body:
        return _invalid("body", "NUL characters are not allowed", "nul_character")
    try:
        value = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NonFinite as error:
        return _invalid("body", f"{error}: numbers must be finite", "finite_number")
    except (ValueError, RecursionError):
        return None
    where = _nul_in_json(value)
    if where is not None:
        return _invalid(where, "NUL characters (\\u0000) are not allowed", "nul_character")
    return None


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a `receive` that replays it (then whatever the server sends next)."""
    chunks: list[bytes] = []
    pending: list[Message] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            pending.append(message)  # the client went away
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}, *pending]

    async def replayed() -> Message:
        return replay.pop(0) if replay else await receive()

    return body, replayed


@dataclass
class _Exchange:
    status: int = 500
    started: bool = False


class EdgeMiddleware:
    """The outermost layer of a service's routes (pure ASGI, so it sees every response, the exception
    handlers' and its own 500s included): request id, log context, trace span, metrics, input guards and
    the answer to unexpected exceptions."""

    def __init__(self, app: ASGIApp, *, service: str, router: Router) -> None:
        self.app = app
        self.service = service
        self.router = router
        self.log = logger(component="http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = _behind_the_gateway(scope)
        request_id = _request_id_of(scope)
        baseline = structlog.contextvars.get_contextvars()
        token = _request_id.set(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        exchange = _Exchange()
        started = time.perf_counter()

        async def send_with_context(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.started, exchange.status = True, message["status"]
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                if traceparent := current_traceparent():
                    headers["traceparent"] = traceparent
            await send(message)

        try:
            with tracer().start_as_current_span(
                method,
                context=context_from_traceparent(_text_header(scope, b"traceparent")),
                kind=trace.SpanKind.SERVER,
                attributes={"http.request.method": method, "url.path": scope.get("path", "")[:300]},
            ) as span:
                try:
                    await self._serve(scope, receive, send_with_context)
                except Exception as error:
                    span.record_exception(error)
                    span.set_status(Status(StatusCode.ERROR))
                    self.log.exception(
                        "http.unhandled", method=method, route=self._route(scope), error=repr(error)[:1000]
                    )
                    if exchange.started:
                        raise  # the response is cut short; the server closes the connection
                    await problem(500, "Internal error", "an unexpected error occurred; see the service log")(
                        scope, receive, send_with_context
                    )
                finally:
                    label = self._route(scope)
                    span.update_name(f"{method} {label}")
                    span.set_attribute("http.route", label)
                    span.set_attribute("http.response.status_code", exchange.status)
        finally:
            route = self._route(scope)
            REQUESTS.labels(self.service, method, route, str(exchange.status)).inc()
            LATENCY.labels(self.service, method, route).observe(time.perf_counter() - started)
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(**baseline)
            _request_id.reset(token)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        where = _nul_outside_body(scope)
        if where is not None:
            await _invalid(where, "NUL characters are not allowed", "nul_character")(scope, receive, send)
            return
        route, full = _match(self.router.routes, scope)
        if full and _takes_json_body(route) and _is_json(_header(scope, b"content-type")):
            try:
                body, receive = await _read_body(receive)
            except StarletteHTTPException as error:  # e.g. a body size limit
                title = _TITLES.get(error.status_code) or _phrase(error.status_code)
                await problem(error.status_code, title, str(error.detail))(scope, receive, send)
                return
            refusal = _refuse_json(body)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            route, _ = _match(self.router.routes, scope)
        path = getattr(route, "path", None)
        return path if isinstance(path, str) else UNMATCHED


def _text_header(scope: Scope, name: bytes) -> str | None:
    value = _header(scope, name)
    return value.decode("latin-1") if value is not None else None


_GATEWAY_PREFIX = re.compile(r"/api/[a-z][a-z0-9-]{0,62}")


def _behind_the_gateway(scope: Scope) -> Scope:
    """The scope with the gateway's `/api/<service>` as its root path, when the gateway says so
    (`x-forwarded-prefix`): the API docs then load `/api/<service>/openapi.json` and the schema names the
    gateway's path as its server. It changes only the URLs the service writes, not how routes match (the
    gateway has already taken the prefix off the path)."""
    prefix = _text_header(scope, b"x-forwarded-prefix")
    if prefix is None or scope.get("root_path") or not _GATEWAY_PREFIX.fullmatch(prefix):
        return scope
    return {**scope, "root_path": prefix}


# ------------------------------------------------------------------------------------------------ OpenAPI

_PROBLEM_RESPONSES = {
    400: "Bad request: the body cannot be parsed, or the request makes no sense.",
    401: "No valid bearer token.",
    403: "The caller's roles do not allow this.",
    404: "No such resource (or the caller's tenant may not see it).",
    409: "The request conflicts with the resource's state.",
    422: "The request is invalid (every problem is listed in `errors`).",
    429: "Too many requests: slow down.",
    500: "An unexpected error; the response's X-Request-ID finds it in the service log.",
    503: "A dependency is unavailable; retry later.",
}
_OPERATIONS_PROBLEMS = (422, 500)
"""What the kit's own operations routes (/healthz, /readyz) can answer besides their own statuses."""
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Document the problem responses of every operation of an OpenAPI document (in place): a `Problem`
    schema (replacing FastAPI's HTTPValidationError), served as application/problem+json, for every 4xx
    and 5xx the operation may answer."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem_schema.pop("$defs", {}))
    components["Problem"] = problem_schema
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _HTTP_METHODS or not isinstance(operation, dict):
                continue
            operations_route = "operations" in operation.get("tags", ())
            statuses: Sequence[int] = _OPERATIONS_PROBLEMS if operations_route else tuple(_PROBLEM_RESPONSES)
            responses = operation.setdefault("responses", {})
            for status in statuses:
                responses.setdefault(str(status), {"description": _PROBLEM_RESPONSES[status]})
            for code, response in responses.items():
                if code[:1] in ("4", "5"):
                    if code == "422" and response.get("description") == "Validation Error":
                        response["description"] = _PROBLEM_RESPONSES[422]
                    response["content"] = dict(content)
    for unused in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{unused}"' not in json.dumps(schema):
            components.pop(unused, None)
    return schema


_BOUNDS = {
    "ge": ("minimum", max),
    "gt": ("exclusiveMinimum", max),
    "le": ("maximum", min),
    "lt": ("exclusiveMaximum", min),
}


def standard_bounds(schema: Any) -> Any:
    """Rewrite the `ge`/`gt`/`le`/`lt` keys pydantic leaves in a number's JSON Schema when it cannot fold
    a bound into the number's own schema (an optional field, a bound outside the type's metadata) into
    JSON Schema's `minimum`/`exclusiveMinimum`/`maximum`/`exclusiveMaximum` (in place; the tighter bound
    wins)."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if node.get("type") in ("integer", "number"):
            for key, (standard, tighter) in _BOUNDS.items():
                value = node.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    del node[key]
                    node[standard] = tighter(node[standard], value) if standard in node else value
        stack.extend(node.values())
    return schema


def no_nul_strings(schema: Any) -> Any:
    """Give every free string of a JSON Schema (no pattern, format, enum or const of its own) the pattern
    `^[^\\x00]*$`: the edge refuses NUL in every string, and the document says so (in place)."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if node.get("type") == "string" and not {"pattern", "format", "enum", "const"} & node.keys():
            node["pattern"] = NO_NUL
        stack.extend(node.values())
    return schema


def _install_problem_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(no_nul_strings(standard_bounds(generate())))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# -------------------------------------------------------------------------------------------------- app


def create_app(
    service: str,
    *,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    lifespan: Lifespan | None = None,
    title: str | None = None,
) -> FastAPI:
    """A FastAPI app with Forge's input guards, error format, context, health, readiness and metrics."""
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
    app.add_middleware(EdgeMiddleware, service=service, router=app.router)
    _install_problem_openapi(app)

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
