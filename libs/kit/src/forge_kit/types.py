"""Field types for what callers send: strict integers bounded to the column they land in (INTEGER; BIGINT
within JSON's safe integers), finite floats, and text without NUL (PostgreSQL refuses `\\x00` in text
and jsonb).

    class QuotaUpdate(BaseModel):
        cpu_millis: NonNegativeInt64 = Field(le=10**12)    # BIGINT column; `true`, `1.5`, "1000" refused
        priority: NonNegativeInt32 = Field(default=0, le=1000)  # INTEGER column
        threshold: FiniteFloat | None = None              # NaN and ±Infinity refused
        reason: NonBlankText | None = Field(default=None, max_length=4000)

    @router.get("/things")
    async def things(offset: Annotated[NonNegativeInt64Param, Query()] = 0) -> ...

- **Body fields** (JSON numbers arrive as numbers) use the strict types: a bool, a numeric string and a
  number with a fraction are refused for an integer (`3.0` is one, as JSON Schema says); a bool or a
  string for a float. Dates, UUIDs and enums still parse from their JSON strings: strictness is per
  field, never a model-wide `strict=True`.
- **Query, path and header parameters** arrive as strings, so they use the `*Param` types: bounded to the
  column, not strict.
- Bounds: `Field(ge=..., le=...)` at the use site narrows the column's range and never widens it. (Where
  pydantic cannot fold such a bound into the integer schema, e.g. on an optional field, it writes a
  non-standard `le`/`ge` key into the JSON Schema; `forge_kit.http.create_app`'s OpenAPI document turns
  those into `maximum`/`minimum`.) The text types carry a `pattern`; a field that needs a pattern of its
  own uses that instead (and excludes NUL with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AllowInfNan,
    AwareDatetime,
    BeforeValidator,
    GetCoreSchemaHandler,
    Strict,
    StringConstraints,
)
from pydantic_core import PydanticCustomError, core_schema

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
"""The range of SQL INTEGER (PostgreSQL `integer`, `int4`)."""
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
"""The range of SQL BIGINT (PostgreSQL `bigint`, `int8`)."""
SAFE_INT_MAX = 2**53 - 1
"""The largest integer every JSON client reads exactly (I-JSON, RFC 7493): the bound of BIGINT fields."""


@dataclass(frozen=True)
class Within:
    """Integer metadata: keep the value inside `[lo, hi]` (a column's range), intersected with any `ge`/`le`
    given at the use site, so a field can narrow the range but never widen it. Documented in the JSON
    Schema as `minimum`/`maximum`."""

    lo: int
    hi: int

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        schema = handler(source)
        if schema.get("type") != "int":
            raise TypeError(f"Within bounds integers, not {schema.get('type')!r}")
        int_schema: Any = schema  # an IntSchema: `ge`/`le` are its own keys
        int_schema["ge"] = max(int_schema.get("ge", self.lo), self.lo)
        int_schema["le"] = min(int_schema.get("le", self.hi), self.hi)
        return schema


def _json_integer(value: Any) -> Any:
    if isinstance(value, bool | str | bytes | bytearray):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


JsonInteger = BeforeValidator(_json_integer)
"""Integer metadata: a JSON integer only, never a bool or a numeric string. An integral number such as `3.0`
is an integer, as JSON Schema says (a fraction is refused)."""

# Body fields: JSON integers (no bool, no numeric string), bounded to the column.
Int32 = Annotated[int, Within(INT32_MIN, INT32_MAX), JsonInteger]
"""An INTEGER column's value."""
NonNegativeInt32 = Annotated[int, Within(0, INT32_MAX), JsonInteger]
"""An INTEGER column's value, at least 0 (counts, positions, priorities)."""
PositiveInt32 = Annotated[int, Within(1, INT32_MAX), JsonInteger]
"""An INTEGER column's value, at least 1 (version numbers, sizes of something that exists)."""
Int64 = Annotated[int, Within(-SAFE_INT_MAX, SAFE_INT_MAX), JsonInteger]
"""A BIGINT column's value, within JSON's safe integers (±(2**53 - 1): 8 PiB as bytes), so that every
client, JavaScript's and float-based fuzzers' included, reads the number it was sent."""
NonNegativeInt64 = Annotated[int, Within(0, SAFE_INT_MAX), JsonInteger]
"""A BIGINT column's value, at least 0 (bytes, millicores, steps, seeds)."""
PositiveInt64 = Annotated[int, Within(1, SAFE_INT_MAX), JsonInteger]
"""A BIGINT column's value, at least 1."""

# Query, path and header parameters: they arrive as strings, so bounded but not strict.
Int32Param = Annotated[int, Within(INT32_MIN, INT32_MAX)]
NonNegativeInt32Param = Annotated[int, Within(0, INT32_MAX)]
PositiveInt32Param = Annotated[int, Within(1, INT32_MAX)]
Int64Param = Annotated[int, Within(-SAFE_INT_MAX, SAFE_INT_MAX)]
NonNegativeInt64Param = Annotated[int, Within(0, SAFE_INT_MAX)]
"""An offset or a cursor into a BIGINT sequence (`offset`, `after`)."""
PositiveInt64Param = Annotated[int, Within(1, SAFE_INT_MAX)]

FiniteFloat = Annotated[float, Strict(), AllowInfNan(False)]
"""A float body field: a JSON number (an integer is fine), never NaN or ±Infinity, never a bool or string."""
FiniteFloatParam = Annotated[float, AllowInfNan(False)]
"""A float parameter (from a string), never `nan` or `inf`."""


def _iso_text(value: Any) -> Any:
    if isinstance(value, str | datetime):
        return value
    raise PydanticCustomError("datetime_type", "Input should be a date and time as ISO 8601 text")


Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
"""A date and time with its offset, from ISO 8601 text (`2025-03-03T10:00:00Z`); never a bare number."""

# Character classes spelled out rather than `\s`: Python's `\s` and JSON Schema's (ECMA 262) differ (U+0085,
# U+001C-1F, U+FEFF), and a pattern must mean the same to the service and to a client checking the schema.
_CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
"""C0 and C1 controls (NEL included) and the Unicode line and paragraph separators: never in one line."""
_BLANK = r" \xa0\u1680\u2000-\u200a\u202f\u205f\u3000\ufeff"
"""Spaces that are not controls (no-break, ideographic U+3000, ...): not "something" in a non-blank line."""
_WHITE = rf"\t\n\v\f\r\x1c-\x1f\x85{_BLANK}\u2028\u2029"
"""Every character either Python or ECMA 262 counts as white space."""

NO_NUL = r"^[^\x00]*$"
NON_BLANK_NO_NUL = rf"^[{_WHITE}]*[^{_WHITE}\x00][^\x00]*$"
ONE_LINE = rf"^[^{_CONTROL}]*$"
NON_BLANK_ONE_LINE = rf"^[{_BLANK}]*[^{_BLANK}{_CONTROL}][^{_CONTROL}]*$"

Text = Annotated[str, StringConstraints(pattern=NO_NUL)]
"""Free text (descriptions, notes, instructions): any characters but NUL; may be empty."""
NonBlankText = Annotated[str, StringConstraints(pattern=NON_BLANK_NO_NUL)]
"""Free text with something in it besides white space (reasons, comments); no NUL."""
Line = Annotated[str, StringConstraints(pattern=ONE_LINE)]
"""One line (names, labels, keys, identifiers from callers): no control characters; may be empty."""
NonBlankLine = Annotated[str, StringConstraints(pattern=NON_BLANK_ONE_LINE)]
"""One line with something in it besides spaces: no control characters."""
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")]
"""A user's sign-in name as the identity provider has it (`preferred_username`): a member, an assignee."""

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "INT64_MAX",
    "INT64_MIN",
    "SAFE_INT_MAX",
    "FiniteFloat",
    "FiniteFloatParam",
    "Int32",
    "Int32Param",
    "Int64",
    "Int64Param",
    "JsonInteger",
    "Line",
    "NonBlankLine",
    "NonBlankText",
    "NonNegativeInt32",
    "NonNegativeInt32Param",
    "NonNegativeInt64",
    "NonNegativeInt64Param",
    "PositiveInt32",
    "PositiveInt32Param",
    "PositiveInt64",
    "PositiveInt64Param",
    "Text",
    "Timestamp",
    "Username",
    "Within",
]
