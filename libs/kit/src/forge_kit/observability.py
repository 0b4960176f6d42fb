"""Structured logs and traces: structlog JSON lines that carry the current trace and span ids.

`configure(service)` is called once by a service's composition root. Traces use OpenTelemetry's SDK
with Temporal's replay-safe tracer provider (so workflow code may create spans); exporters are
attached by the caller (`add_span_exporter`), e.g. OTLP in production, in-memory in tests.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_configured_service: str | None = None


def _add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event["trace_id"] = format(span_context.trace_id, "032x")
        event["span_id"] = format(span_context.span_id, "016x")
    return event


def configure(service: str, *, level: int = logging.INFO) -> None:
    """Set up JSON logging and the global tracer provider for `service` (idempotent)."""
    global _configured_service
    if _configured_service is not None:
        return
    _configured_service = service
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_trace_ids,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # Resolve stderr when a line is written, not at configure time (it may be redirected later).
        logger_factory=lambda *_: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        from temporalio.contrib.opentelemetry import create_tracer_provider

        provider = create_tracer_provider(resource=Resource.create({"service.name": service}))
        trace.set_tracer_provider(provider)


def add_span_exporter(exporter: SpanExporter) -> None:
    """Send finished spans to `exporter` (synchronously; use a batching processor for production)."""
    provider = trace.get_tracer_provider()
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        raise RuntimeError("call forge_kit.observability.configure() before adding exporters")
    add(SimpleSpanProcessor(exporter))


@functools.cache
def tracer(name: str = "forge") -> trace.Tracer:
    """The tracer for Forge code (cached: looking one up costs more than starting a span)."""
    return trace.get_tracer(name)


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id in a W3C traceparent (`00-<trace id>-<span id>-<flags>`)."""
    parts = traceparent.split("-") if traceparent else []
    return parts[1] if len(parts) == 4 else None


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, or None outside any span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> otel_context.Context:
    """An OpenTelemetry context whose parent is the given traceparent (empty context if None)."""
    if not traceparent:
        return otel_context.Context()
    return _PROPAGATOR.extract({"traceparent": traceparent})


def logger(**bound: Any) -> Any:
    """A structlog logger with the given fields bound."""
    return structlog.get_logger().bind(**bound)
