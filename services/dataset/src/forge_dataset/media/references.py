"""Records that reference media files of their version (an image dataset's `{"image": "img/001.png",
"label": "cat"}`): which fields do (the schema hint's `contentMediaType`, JSON Schema's keyword for a
string naming content of that type), and whether every reference names a media file of the version of a
kind the hint allows. Checked when a version is published, streaming the record files (only when the
hint declares such a field); a dangling reference makes the version invalid, naming the record."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import orjson

from forge_dataset import records
from forge_dataset.objects import ObjectStore
from forge_dataset.tables import VersionFile

MEDIA_TYPE_PATTERN = re.compile(r"^[a-z]+/(\*|[a-z0-9][a-z0-9.+-]*)$")
MAX_ERRORS = 20


def media_fields(hint: dict[str, Any] | None) -> dict[str, str]:
    """Field -> the media type its values must name (`image/*`, `audio/wav`), from the schema hint."""
    properties = (hint or {}).get("properties", {})
    if not isinstance(properties, dict):
        return {}
    return {
        name: spec["contentMediaType"]
        for name, spec in properties.items()
        if isinstance(spec, dict) and isinstance(spec.get("contentMediaType"), str)
    }


def hint_problems(hint: dict[str, Any]) -> list[str]:
    """What is wrong with the hint's media references: a media type that is not `type/subtype` or
    `type/*`."""
    return [
        f"properties.{name}.contentMediaType must be a media type such as image/* or audio/wav, not {kind!r}"
        for name, kind in media_fields(hint).items()
        if not MEDIA_TYPE_PATTERN.match(kind)
    ]


def references(record: dict[str, Any], fields: dict[str, str]) -> dict[str, str]:
    """The media files a record names: field -> file name (fields holding a string only)."""
    return {name: value for name in fields if isinstance(value := record.get(name), str)}


class ReferenceCheck:
    """Every reference of a version's records against its media files."""

    def __init__(self, fields: dict[str, str], files: list[VersionFile]) -> None:
        self.fields = fields
        self.media = {f.name: f.media_type for f in files if f.format is None}
        self.errors: list[str] = []
        self.dangling = 0

    def _fail(self, message: str) -> None:
        self.dangling += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)

    def check(self, file: str, number: int, record: dict[str, Any]) -> None:
        for name, kind in self.fields.items():
            value = record.get(name)
            if value is None:
                continue
            where = f"{file} record {number}: {name}"
            if not isinstance(value, str):
                self._fail(f"{where} is not a file name")
            elif value not in self.media:
                self._fail(f"{where} {value!r} is not a media file of this version")
            elif not fnmatch.fnmatchcase(self.media[value], kind):
                self._fail(f"{where} {value!r} is {self.media[value]}, not {kind}")

    def summary(self) -> list[str]:
        more = self.dangling - len(self.errors)
        return self.errors + ([f"... and {more} more references"] if more > 0 else [])


async def _check_file(
    store: ObjectStore, file: VersionFile, check: ReferenceCheck, work_dir: Path | None
) -> None:
    number = 0

    def handle(lines: list[bytes]) -> None:
        nonlocal number
        for line in lines:
            number += 1
            record = orjson.loads(line)
            if isinstance(record, dict):
                check.check(file.name, number, record)

    await records.each_lines(store, file, work_dir, handle)


async def check_references(
    store: ObjectStore, files: list[VersionFile], fields: dict[str, str], work_dir: Path | None
) -> list[str]:
    """The version's dangling references (at most MAX_ERRORS named, then a count), streaming its records."""
    check = ReferenceCheck(fields, files)
    for file in files:
        if file.format is not None:
            await _check_file(store, file, check, work_dir)
    return check.summary()
