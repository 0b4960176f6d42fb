"""Backward compatibility of payload schemas: only optional fields may be added within a version."""

from __future__ import annotations

from typing import Any, Literal

from forge_contracts.compatibility import breaking_changes
from forge_contracts.events import EVENT_TYPES
from forge_contracts.generate import breaking_changes as exposed_by_the_generator
from pydantic import BaseModel


class Published(BaseModel):
    job_id: str
    error: str
    exit_code: int | None = None
    stage: Literal["packaging", "publishing"] = "packaging"


class File(BaseModel):
    path: str
    sha256: str


class Bundle(BaseModel):
    files: list[File]


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def test_an_unchanged_schema_is_compatible() -> None:
    for model in EVENT_TYPES.values():
        assert breaking_changes(model.model_json_schema(), model.model_json_schema()) == []


def test_the_generator_exposes_the_comparison() -> None:
    assert exposed_by_the_generator is breaking_changes


def test_removing_a_field_is_a_breaking_change() -> None:
    class Removed(BaseModel):
        job_id: str
        exit_code: int | None = None
        stage: Literal["packaging", "publishing"] = "packaging"

    assert breaking_changes(_schema(Published), _schema(Removed)) == [
        "property 'error' was removed (or renamed)"
    ]


def test_renaming_a_field_is_a_breaking_change() -> None:
    class Renamed(BaseModel):
        job_id: str
        error_message: str
        exit_code: int | None = None
        stage: Literal["packaging", "publishing"] = "packaging"

    problems = breaking_changes(_schema(Published), _schema(Renamed))

    assert "property 'error' was removed (or renamed)" in problems


def test_adding_an_optional_field_is_compatible() -> None:
    class Added(Published):
        hint: str | None = None
        attempts: int = 1

    assert breaking_changes(_schema(Published), _schema(Added)) == []


def test_changing_a_field_type_is_a_breaking_change() -> None:
    class Retyped(BaseModel):
        job_id: str
        error: str
        exit_code: str | None = None
        stage: Literal["packaging", "publishing"] = "packaging"

    assert breaking_changes(_schema(Published), _schema(Retyped)) == [
        "property 'exit_code' changed type from integer | null to null | string"
    ]


def test_making_a_field_nullable_is_a_breaking_change() -> None:
    class Nullable(BaseModel):
        job_id: str | None
        error: str
        exit_code: int | None = None
        stage: Literal["packaging", "publishing"] = "packaging"

    assert breaking_changes(_schema(Published), _schema(Nullable)) != []


def test_adding_a_required_field_is_breaking() -> None:
    class Required(Published):
        attempt: int

    assert breaking_changes(_schema(Published), _schema(Required)) == ["new property 'attempt' is required"]


def test_making_an_optional_field_required_is_breaking() -> None:
    class Stricter(BaseModel):
        job_id: str
        error: str
        exit_code: int | None
        stage: Literal["packaging", "publishing"] = "packaging"

    assert breaking_changes(_schema(Published), _schema(Stricter)) == ["property 'exit_code' became required"]


def test_removing_an_allowed_value_is_breaking() -> None:
    class Narrower(BaseModel):
        job_id: str
        error: str
        exit_code: int | None = None
        stage: Literal["packaging"] = "packaging"

    assert breaking_changes(_schema(Published), _schema(Narrower)) == [
        "property 'stage' no longer allows publishing"
    ]


def test_adding_an_allowed_value_is_compatible() -> None:
    class Wider(BaseModel):
        job_id: str
        error: str
        exit_code: int | None = None
        stage: Literal["packaging", "publishing", "created"] = "packaging"

    assert breaking_changes(_schema(Published), _schema(Wider)) == []


def test_a_change_inside_a_nested_model_is_found() -> None:
    class SlimFile(BaseModel):
        path: str

    class SlimBundle(BaseModel):
        files: list[SlimFile]

    assert breaking_changes(_schema(Bundle), _schema(SlimBundle)) == [
        "property 'files[].sha256' was removed (or renamed)"
    ]


def test_a_required_field_added_to_a_nested_model_is_breaking() -> None:
    class RicherFile(File):
        size_bytes: int

    class RicherBundle(BaseModel):
        files: list[RicherFile]

    assert breaking_changes(_schema(Bundle), _schema(RicherBundle)) == [
        "new property 'files[].size_bytes' is required"
    ]
