"""Backward compatibility of event payload schemas within one versioned event type.

Within `forge.<...>.v1` a producer may only add optional fields (and new enum values): consumers
ignore unknown fields, and old events still validate. Anything else breaks someone — an old consumer
(a removed, renamed or retyped field) or a replay of old events (a new required field, a removed enum
value) — and needs a new event type, `.v2`, published alongside `.v1` while consumers move over.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def breaking_changes(old_schema: Schema, new_schema: Schema) -> list[str]:
    """Every incompatible difference from `old_schema` to `new_schema` (JSON Schemas of one payload)."""
    return _compare_objects(_Side(old_schema), _Side(new_schema), old_schema, new_schema, "")


class _Side:
    """One schema document, to resolve its local `$ref`s against."""

    def __init__(self, root: Schema) -> None:
        self.root = root

    def resolve(self, schema: Schema) -> Schema:
        seen: set[str] = set()
        while isinstance(ref := schema.get("$ref"), str) and ref.startswith("#/") and ref not in seen:
            seen.add(ref)
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target.get(part.replace("~1", "/").replace("~0", "~"), {})
            schema = {**target, **{key: value for key, value in schema.items() if key != "$ref"}}
        return schema

    def branches(self, schema: Schema) -> list[Schema]:
        """The alternatives of a union (`anyOf`/`oneOf`), or the schema itself."""
        schema = self.resolve(schema)
        union = schema.get("anyOf") or schema.get("oneOf")
        if not union:
            return [schema]
        return [branch for option in union for branch in self.branches(option)]

    def types(self, schema: Schema) -> frozenset[str]:
        """What a value may be: JSON types, with string formats, array items and map values."""
        return frozenset(kind for branch in self.branches(schema) for kind in self._branch_types(branch))

    def _branch_types(self, schema: Schema) -> list[str]:
        declared = schema.get("type")
        if declared is None:
            if "const" in schema or "enum" in schema:
                return sorted({_json_type(value) for value in _listed(schema)})
            return ["object"] if "properties" in schema else ["any"]
        return [
            self._type_name(kind, schema) for kind in (declared if isinstance(declared, list) else [declared])
        ]

    def _type_name(self, kind: str, schema: Schema) -> str:
        if kind == "string" and "format" in schema:
            return f"string({schema['format']})"
        if kind == "array":
            return f"array<{_join(self.types(schema.get('items', {})))}>"
        values = schema.get("additionalProperties")
        if kind == "object" and isinstance(values, dict) and "properties" not in schema:
            return f"map<{_join(self.types(values))}>"
        return str(kind)

    def values(self, schema: Schema) -> frozenset[Any] | None:
        """The values allowed by `const`/`enum`, or None when any value of its type is allowed."""
        allowed: set[Any] = set()
        for branch in self.branches(schema):
            if "const" in branch or "enum" in branch:
                allowed |= {_hashable(value) for value in _listed(branch)}
            elif branch.get("type") == "null":
                allowed.add(None)
            else:
                return None
        return frozenset(allowed)

    def object_of(self, schema: Schema) -> Schema | None:
        """The object (with `properties`) among a schema's alternatives, if any."""
        return next((branch for branch in self.branches(schema) if "properties" in branch), None)

    def items_of(self, schema: Schema) -> Schema | None:
        """The item schema of the array among a schema's alternatives, if any."""
        return next(
            (b["items"] for b in self.branches(schema) if b.get("type") == "array" and "items" in b), None
        )


def _compare_objects(old: _Side, new: _Side, before: Schema, after: Schema, path: str) -> list[str]:
    problems: list[str] = []
    old_properties: Schema = before.get("properties", {})
    new_properties: Schema = after.get("properties", {})
    for name, schema in old_properties.items():
        if name not in new_properties:
            problems.append(f"property '{path}{name}' was removed (or renamed)")
            continue
        problems += _compare_properties(old, new, schema, new_properties[name], f"{path}{name}")
    newly_required = sorted(set(after.get("required", [])) - set(before.get("required", [])))
    for name in newly_required:
        if name in old_properties:
            problems.append(f"property '{path}{name}' became required")
        else:
            problems.append(f"new property '{path}{name}' is required")
    return problems


def _compare_properties(old: _Side, new: _Side, before: Schema, after: Schema, where: str) -> list[str]:
    old_types, new_types = old.types(before), new.types(after)
    if old_types != new_types:
        return [f"property '{where}' changed type from {_join(old_types)} to {_join(new_types)}"]
    problems = _compare_values(old.values(before), new.values(after), where)
    old_object, new_object = old.object_of(before), new.object_of(after)
    if old_object is not None and new_object is not None:
        problems += _compare_objects(old, new, old_object, new_object, f"{where}.")
    old_items, new_items = old.items_of(before), new.items_of(after)
    if old_items is not None and new_items is not None:
        problems += _compare_properties(old, new, old_items, new_items, f"{where}[]")
    return problems


def _compare_values(before: frozenset[Any] | None, after: frozenset[Any] | None, where: str) -> list[str]:
    if after is None:
        return []  # unrestricted now: every old value is still valid
    if before is None:
        return [f"property '{where}' is now restricted to {_join(after)}"]
    if removed := before - after:
        return [f"property '{where}' no longer allows {_join(removed)}"]
    return []


def _listed(schema: Schema) -> list[Any]:
    return [schema["const"]] if "const" in schema else list(schema.get("enum", []))


def _json_type(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
    return names.get(type(value), "object" if isinstance(value, dict) else "array")


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, dict | list) else value


def _join(values: frozenset[Any] | set[Any]) -> str:
    return " | ".join(sorted(repr(value) if not isinstance(value, str) else value for value in values))
