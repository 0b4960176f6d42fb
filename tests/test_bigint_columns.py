"""Columns that count bytes, records or parameters are BIGINT in the migrations; the table models must say
so too, or the asyncpg dialect binds their values as `$n::INTEGER` and anything past 2**31 (a 3 GiB file,
a 7B model, a large bundle) fails in the insert or the lookup with a 500."""

from __future__ import annotations

import importlib

import pytest
from sqlalchemy import BigInteger
from sqlmodel import SQLModel

SERVICES = ["dataset", "labeling", "training", "registry", "scheduler", "delivery"]
BIG = ("_bytes", "bytes_done", "bytes_total", "record_count", "item_count", "parameter_count", "cpu_millis")
INTEGER_ON_PURPOSE = {"labeling_exports.record_count", "evaluation_jobs.record_count"}
"""INTEGER in their migrations as well: an export's items and an evaluation's records stay far below 2**31."""


@pytest.mark.parametrize("service", SERVICES)
def test_byte_record_and_parameter_counts_bind_as_bigint(service: str) -> None:
    module = importlib.import_module(f"forge_{service}.tables")
    tables = {
        value.__table__
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, SQLModel) and hasattr(value, "__table__")
    }
    narrow = [
        f"{table.name}.{column.name}"
        for table in tables
        for column in table.columns
        if column.name.endswith(BIG) and not isinstance(column.type, BigInteger)
    ]
    narrow = [name for name in narrow if name not in INTEGER_ON_PURPOSE]
    assert narrow == []
