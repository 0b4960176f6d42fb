"""Dataset rules, without I/O: JSONL scanning, manifests and their content hash, object keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from forge_contracts.activities.dataset import ManifestFile

from forge_dataset.statistics.domain import FileStats

MANIFEST_FORMAT = "forge.dataset.manifest/v1"
MAX_LINE_BYTES = 16 * 1024 * 1024


class Modality(StrEnum):
    text = "text"
    image = "image"
    audio = "audio"
    video = "video"


class Secrecy(StrEnum):
    public = "public"
    internal = "internal"
    confidential = "confidential"
    secret = "secret"  # noqa: S105 (a classification level, not a password)


class InvalidRecords(ValueError):
    """A JSONL file has a line that is not a JSON object; `line` is 1-based."""

    def __init__(self, file: str, line: int, problem: str) -> None:
        super().__init__(f"{file} line {line}: {problem}")
        self.file = file
        self.line = line


@dataclass
class JsonlScanner:
    """Fed a JSONL file's bytes in chunks of any size: checks every non-blank line is a JSON object,
    counts records, collects the file's statistics, and computes its sha256 and size. Holds at most
    one partial line."""

    file: str
    records: int = 0
    size_bytes: int = 0
    lines: int = 0
    stats: FileStats = field(default_factory=FileStats)
    format: str | None = "jsonl"
    media_type: str = "application/x-ndjson"
    _pending: bytearray = field(default_factory=bytearray)
    _digest: Any = field(default_factory=hashlib.sha256)

    def feed(self, chunk: bytes) -> None:
        """Scan `chunk`; raises InvalidRecords at the first bad line."""
        self._digest.update(chunk)
        self.size_bytes += len(chunk)
        self._pending += chunk
        start = 0
        while (end := self._pending.find(b"\n", start)) != -1:
            self._line(bytes(self._pending[start:end]))
            start = end + 1
        del self._pending[:start]
        if len(self._pending) > MAX_LINE_BYTES:
            raise InvalidRecords(self.file, self.lines + 1, f"line longer than {MAX_LINE_BYTES} bytes")

    def finish(self) -> None:
        """Scan the last line (one without a trailing newline); raises InvalidRecords if there is none."""
        self.finish_allowing_empty()
        if self.records == 0:
            raise InvalidRecords(self.file, max(self.lines, 1), "the file holds no records")

    def finish_allowing_empty(self) -> None:
        """Scan the last line (one without a trailing newline), if any."""
        if self._pending:
            self._line(bytes(self._pending))
            self._pending.clear()

    @property
    def sha256(self) -> str:
        return str(self._digest.hexdigest())

    def _line(self, raw: bytes) -> None:
        self.lines += 1
        if not raw.strip():
            return  # blank lines are allowed and not records
        try:
            value = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InvalidRecords(self.file, self.lines, f"not valid JSON ({error})") from None
        if not isinstance(value, dict):
            raise InvalidRecords(self.file, self.lines, f"a JSON {type(value).__name__}, not an object")
        self.records += 1
        self.stats.add(value)


def scan(name: str, data: bytes) -> JsonlScanner:
    """A whole file, scanned (for files built here, such as a split's outputs)."""
    scanner = JsonlScanner(name)
    scanner.feed(data)
    scanner.finish_allowing_empty()
    return scanner


def blob_key(tenant: str, sha256: str) -> str:
    """Where a file's bytes live: content-addressed, per tenant, so the same bytes are stored once."""
    return f"tenants/{tenant}/blobs/sha256/{sha256[:2]}/{sha256}"


def staging_prefix(tenant: str, version_id: str) -> str:
    """Where uploads of a version stream to before they are checked and content-addressed."""
    return f"tenants/{tenant}/staging/{version_id}/"


def manifest_key(tenant: str, sha256: str) -> str:
    return f"tenants/{tenant}/manifests/{sha256}.json"


def manifest(files: Iterable[ManifestFile]) -> bytes:
    """The canonical manifest of a version: its files sorted by name, as compact sorted-key JSON (fields
    left unset are left out, so manifests written before a field existed keep their bytes). Its sha256
    is the version's content address: the same files give the same bytes and hash."""
    listed = sorted(files, key=lambda f: f.name)
    body = {
        "format": MANIFEST_FORMAT,
        "files": [f.model_dump(mode="json", exclude_none=True) for f in listed],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
