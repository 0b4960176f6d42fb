"""Per-version statistics (DS-2), collected while a file's records are scanned, in bounded memory:
for every top-level field, how many records have it, its JSON types, string lengths and, while it has
few distinct scalar values (a label, a language, a source), how often each value occurs: the label
distribution. A field with more distinct values than `MAX_TRACKED_VALUES` keeps counts and types only.

Stats of a file are a plain JSON document (stored with the file); a version's are its files' merged.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_TRACKED_VALUES = 100
"""Distinct values counted per field; past it, the field's values are no longer counted."""
MAX_TRACKED_FIELDS = 200
"""Fields tracked per file; later new fields are counted under `other_fields` only."""
MAX_VALUE_CHARS = 200
"""A string longer than this is not counted as a value (it is text, not a label)."""


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


@dataclass
class FieldStats:
    present: int = 0
    types: Counter[str] = field(default_factory=Counter)
    values: Counter[str] | None = field(default_factory=Counter)
    """JSON-encoded scalar value -> count; None once more than MAX_TRACKED_VALUES were seen."""
    length_min: int | None = None
    length_max: int | None = None
    length_sum: int = 0
    strings: int = 0

    def add(self, value: Any) -> None:
        self.present += 1
        kind = json_type(value)
        self.types[kind] += 1
        if kind == "string":
            size = len(value)
            self.strings += 1
            self.length_sum += size
            self.length_min = size if self.length_min is None else min(self.length_min, size)
            self.length_max = size if self.length_max is None else max(self.length_max, size)
        if self.values is None:
            return
        if kind in ("array", "object") or (kind == "string" and len(value) > MAX_VALUE_CHARS):
            self.values = None
            return
        self.values[json.dumps(value, ensure_ascii=False)] += 1
        if len(self.values) > MAX_TRACKED_VALUES:
            self.values = None

    def to_json(self) -> dict[str, Any]:
        return {
            "present": self.present,
            "types": dict(sorted(self.types.items())),
            "values": None if self.values is None else dict(sorted(self.values.items())),
            "length": None
            if self.strings == 0
            else {
                "min": self.length_min,
                "max": self.length_max,
                "sum": self.length_sum,
                "count": self.strings,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FieldStats:
        length = data.get("length")
        values = data.get("values")
        return cls(
            present=int(data["present"]),
            types=Counter(data.get("types", {})),
            values=None if values is None else Counter(values),
            length_min=None if length is None else length["min"],
            length_max=None if length is None else length["max"],
            length_sum=0 if length is None else length["sum"],
            strings=0 if length is None else length["count"],
        )

    def merge(self, other: FieldStats) -> None:
        self.present += other.present
        self.types.update(other.types)
        if self.values is not None and other.values is not None:
            self.values.update(other.values)
            if len(self.values) > MAX_TRACKED_VALUES:
                self.values = None
        else:
            self.values = None
        self.length_sum += other.length_sum
        self.strings += other.strings
        for attr, pick in (("length_min", min), ("length_max", max)):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            setattr(self, attr, theirs if mine is None else mine if theirs is None else pick(mine, theirs))


@dataclass
class FileStats:
    records: int = 0
    fields: dict[str, FieldStats] = field(default_factory=dict)
    other_fields: int = 0
    """Field occurrences not tracked because MAX_TRACKED_FIELDS fields were already."""

    def add(self, record: dict[str, Any]) -> None:
        self.records += 1
        for name, value in record.items():
            stats = self.fields.get(name)
            if stats is None:
                if len(self.fields) >= MAX_TRACKED_FIELDS:
                    self.other_fields += 1
                    continue
                stats = self.fields[name] = FieldStats()
            stats.add(value)

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "fields": {name: stats.to_json() for name, stats in sorted(self.fields.items())},
            "other_fields": self.other_fields,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileStats:
        return cls(
            records=int(data["records"]),
            fields={name: FieldStats.from_json(f) for name, f in data.get("fields", {}).items()},
            other_fields=int(data.get("other_fields", 0)),
        )

    def merge(self, other: FileStats) -> None:
        self.records += other.records
        self.other_fields += other.other_fields
        for name, stats in other.fields.items():
            if name in self.fields:
                self.fields[name].merge(stats)
            elif len(self.fields) < MAX_TRACKED_FIELDS:
                self.fields[name] = FieldStats.from_json(stats.to_json())
            else:
                self.other_fields += stats.present


def summary(stats: FileStats, top: int = 20) -> dict[str, Any]:
    """What a user reads: per field, coverage, types, string lengths and the `top` most common values
    with their share (the label distribution), or `distinct_values: null` for a high-cardinality field."""
    out: dict[str, Any] = {}
    for name, f in sorted(stats.fields.items()):
        entry: dict[str, Any] = {
            "present": f.present,
            "missing": stats.records - f.present,
            "types": dict(sorted(f.types.items())),
            "distinct_values": None if f.values is None else len(f.values),
        }
        if f.values is not None:
            ranked = sorted(f.values.items(), key=lambda item: (-item[1], item[0]))[:top]
            entry["values"] = [
                {"value": json.loads(v), "count": c, "share": round(c / f.present, 6)} for v, c in ranked
            ]
        if f.strings:
            entry["length"] = {
                "min": f.length_min,
                "max": f.length_max,
                "mean": round(f.length_sum / f.strings, 3),
            }
        out[name] = entry
    return out


JSON_TYPES = frozenset({"null", "boolean", "integer", "number", "string", "array", "object"})


def inferred_schema(stats: FileStats) -> dict[str, Any]:
    """What the records are, as a JSON Schema for a record: each field's types, and the fields every
    record has as `required`."""
    properties = {}
    for name, f in sorted(stats.fields.items()):
        types = sorted(f.types)
        properties[name] = {"type": types[0] if len(types) == 1 else types}
    required = sorted(name for name, f in stats.fields.items() if f.present == stats.records)
    return {"type": "object", "properties": properties, "required": required}


def hint_problems(hint: dict[str, Any]) -> list[str]:
    """What is wrong with a schema hint's checkable part (`properties` with `type`, `required`,
    `additionalProperties`); a hint without them is a description only."""
    problems = []
    properties = hint.get("properties", {})
    if not isinstance(properties, dict) or not all(isinstance(p, dict) for p in properties.values()):
        return ["properties must map each field name to an object"]
    for name, spec in properties.items():
        allowed = spec.get("type")
        listed = allowed if isinstance(allowed, list) else [allowed] if allowed is not None else []
        if not all(isinstance(t, str) and t in JSON_TYPES for t in listed):
            problems.append(f"properties.{name}.type must be one or more of {', '.join(sorted(JSON_TYPES))}")
    required = hint.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        problems.append("required must be a list of field names")
    if not isinstance(hint.get("additionalProperties", True), bool):
        problems.append("additionalProperties must be true or false")
    return problems


def schema_violations(hint: dict[str, Any], stats: FileStats) -> list[str]:
    """How the records break the hint: a required field missing, a field of a type the hint does not
    allow (`number` allows integers), a field the hint does not list when `additionalProperties` is
    false. Checked from the statistics, so whatever the version's size it costs nothing more."""
    problems = []
    properties: dict[str, Any] = hint.get("properties", {})
    for name in hint.get("required", []):
        present = stats.fields[name].present if name in stats.fields else 0
        if present < stats.records:
            problems.append(
                f"field {name!r} is missing in {stats.records - present} of {stats.records} records"
            )
    for name, spec in properties.items():
        allowed = spec.get("type")
        if allowed is None or name not in stats.fields:
            continue
        allowed = set(allowed if isinstance(allowed, list) else [allowed])
        if "number" in allowed:
            allowed.add("integer")
        for kind, count in sorted(stats.fields[name].types.items()):
            if kind not in allowed:
                kinds = ", ".join(sorted(allowed))
                problems.append(
                    f"field {name!r} is {kind} in {count} records; the schema hint allows {kinds}"
                )
    if hint.get("additionalProperties") is False:
        for name in sorted(set(stats.fields) - set(properties)):
            problems.append(
                f"field {name!r} ({stats.fields[name].present} records) is not in the schema hint"
            )
    return problems
