"""The toy's workflow and activity, in a module of their own: Temporal's sandbox re-imports a workflow's
module, so it must import nothing heavy (no web framework, no ORM)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from opentelemetry import trace


@activity.defn
async def record_trace(counter_id: str) -> str:
    """Returns the trace id the activity runs under (to prove propagation)."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


@workflow.defn
class ToyWorkflow:
    @workflow.run
    async def run(self, counter_id: str) -> str:
        return await workflow.execute_activity(
            record_trace, counter_id, start_to_close_timeout=timedelta(seconds=30)
        )
