"""Tables of the toy aggregate: counters (producer side) and effects (the consumer's projection)."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class Counter(SQLModel, table=True):
    __tablename__ = "toy_counters"

    id: str = Field(primary_key=True)
    tenant: str
    state: str = "open"
    value: int = 0
    sequence: int = 0


class Effect(SQLModel, table=True):
    """One row per handled event: what 'exactly-once effect' is checked against."""

    __tablename__ = "toy_effects"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str
    counter_id: str
    sequence: int
    value: int
    trace_id: str | None = None
