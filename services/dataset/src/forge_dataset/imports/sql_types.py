"""How SQL column types become Arrow types, for the SQL source's Parquet shards: integers, floats,
booleans, text, bytes, dates, times and timestamps keep their type; NUMERIC/DECIMAL becomes a double (as
a JSON number would); UUIDs, JSON and anything else become text (their string form). PostgreSQL arrays
become lists. A MySQL text-or-blob column (the protocol does not say which) takes its type from the
first batch's values."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pymysql.constants import FIELD_TYPE

_TS = pa.timestamp("us")
_TS_UTC = pa.timestamp("us", tz="UTC")

POSTGRES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "oid": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "numeric": pa.float64(),
    "money": pa.string(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
    "char": pa.string(),
    "citext": pa.string(),
    "uuid": pa.string(),
    "json": pa.string(),
    "jsonb": pa.string(),
    "bytea": pa.binary(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": _TS,
    "timestamptz": _TS_UTC,
    "interval": pa.duration("us"),
}

MYSQL: dict[int, pa.DataType | None] = {
    FIELD_TYPE.TINY: pa.int8(),
    FIELD_TYPE.SHORT: pa.int16(),
    FIELD_TYPE.INT24: pa.int32(),
    FIELD_TYPE.LONG: pa.int64(),  # an UNSIGNED INT may exceed int32
    FIELD_TYPE.LONGLONG: pa.int64(),
    FIELD_TYPE.YEAR: pa.int16(),
    FIELD_TYPE.FLOAT: pa.float32(),
    FIELD_TYPE.DOUBLE: pa.float64(),
    FIELD_TYPE.DECIMAL: pa.float64(),
    FIELD_TYPE.NEWDECIMAL: pa.float64(),
    FIELD_TYPE.DATE: pa.date32(),
    FIELD_TYPE.NEWDATE: pa.date32(),
    FIELD_TYPE.TIME: pa.duration("us"),
    FIELD_TYPE.DATETIME: _TS,
    FIELD_TYPE.TIMESTAMP: _TS,
    FIELD_TYPE.JSON: pa.string(),
    FIELD_TYPE.ENUM: pa.string(),
    FIELD_TYPE.SET: pa.string(),
    FIELD_TYPE.BIT: pa.binary(),
    FIELD_TYPE.GEOMETRY: pa.binary(),
    FIELD_TYPE.VARCHAR: None,
    FIELD_TYPE.VAR_STRING: None,
    FIELD_TYPE.STRING: None,
    FIELD_TYPE.TINY_BLOB: None,
    FIELD_TYPE.MEDIUM_BLOB: None,
    FIELD_TYPE.LONG_BLOB: None,
    FIELD_TYPE.BLOB: None,
}
"""None: text or bytes, as the values say."""


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    arrow_type: pa.DataType | None
    """None: settled from the first batch (text unless the values are bytes)."""

    def convert(self, value: Any, arrow_type: pa.DataType) -> Any:
        """`value` as Arrow takes it for `arrow_type`."""
        return _convert(value, arrow_type)


def _convert(value: Any, arrow_type: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_list(arrow_type):
        return [_convert(v, arrow_type.value_type) for v in value]
    if pa.types.is_floating(arrow_type) and isinstance(value, decimal.Decimal):
        return float(value)
    if pa.types.is_string(arrow_type):
        if isinstance(value, str):
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value).decode("utf-8", errors="replace")
        if isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False, default=str)
        return str(value)
    if pa.types.is_binary(arrow_type) and isinstance(value, str):
        return value.encode()
    if pa.types.is_binary(arrow_type) and isinstance(value, bytearray | memoryview):
        return bytes(value)
    if pa.types.is_timestamp(arrow_type) and arrow_type.tz is None and isinstance(value, dt.datetime):
        return (
            value.replace(tzinfo=None)
            if value.tzinfo is None
            else value.astimezone(dt.UTC).replace(tzinfo=None)
        )
    return value


def settle(column: Column, values: Sequence[Any]) -> pa.DataType:
    """The column's Arrow type: its own, else bytes when the first batch holds bytes, else text."""
    if column.arrow_type is not None:
        return column.arrow_type
    if any(isinstance(v, bytes | bytearray) for v in values):
        return pa.binary()
    return pa.string()


def postgres_column(name: str, type_name: str) -> Column:
    element = type_name[1:] if type_name.startswith("_") else type_name.removesuffix("[]")
    if element != type_name and element in POSTGRES:  # `_text` / `text[]`: an array of text
        return Column(name, type_name, pa.list_(POSTGRES[element]))
    return Column(name, type_name, POSTGRES.get(type_name, pa.string()))


def mysql_column(name: str, type_code: int) -> Column:
    return Column(name, f"mysql type {type_code}", MYSQL.get(type_code, pa.string()))
