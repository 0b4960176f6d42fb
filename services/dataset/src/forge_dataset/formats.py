"""What a file of a dataset version is, from its name, checked against its bytes as they stream in.

Record files (JSONL, CSV, Parquet) are parsed: every record checked, counted and added to the file's
statistics. Media and other files are blobs: hashed and sized, and a known kind (PNG, JPEG, WAV, MP4,
...) must start with that kind's signature, so an HTML error page saved as `cat.png` is refused.
Archives (zip, tar, tar.gz) are blobs too; an upload can ask for one to be expanded (forge_dataset.
archives). Every scanner holds at most one partial line (JSONL, CSV) or spools to a local file
(Parquet, whose footer comes last), never the whole file in memory.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import hashlib
import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from forge_contracts.activities.dataset import ManifestFile

from forge_dataset.domain import MAX_LINE_BYTES, InvalidRecords, JsonlScanner
from forge_dataset.statistics.domain import FileStats

RECORD_FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


@dataclass(frozen=True)
class MediaKind:
    media_type: str
    modality: str | None
    """text, image, audio or video (None for documents and archives)."""
    signatures: tuple[tuple[int, bytes], ...] = ()
    """(offset, bytes) pairs of which one must match the file's start; none: not checked."""


_RIFF = (0, b"RIFF")
MEDIA: dict[str, MediaKind] = {
    ".png": MediaKind("image/png", "image", ((0, b"\x89PNG\r\n\x1a\n"),)),
    ".jpg": MediaKind("image/jpeg", "image", ((0, b"\xff\xd8\xff"),)),
    ".jpeg": MediaKind("image/jpeg", "image", ((0, b"\xff\xd8\xff"),)),
    ".gif": MediaKind("image/gif", "image", ((0, b"GIF87a"), (0, b"GIF89a"))),
    ".webp": MediaKind("image/webp", "image", ((8, b"WEBP"),)),
    ".bmp": MediaKind("image/bmp", "image", ((0, b"BM"),)),
    ".tif": MediaKind("image/tiff", "image", ((0, b"II*\x00"), (0, b"MM\x00*"))),
    ".tiff": MediaKind("image/tiff", "image", ((0, b"II*\x00"), (0, b"MM\x00*"))),
    ".wav": MediaKind("audio/wav", "audio", ((8, b"WAVE"),)),
    ".mp3": MediaKind(
        "audio/mpeg", "audio", ((0, b"ID3"), (0, b"\xff\xfb"), (0, b"\xff\xf3"), (0, b"\xff\xf2"))
    ),
    ".flac": MediaKind("audio/flac", "audio", ((0, b"fLaC"),)),
    ".ogg": MediaKind("audio/ogg", "audio", ((0, b"OggS"),)),
    ".m4a": MediaKind("audio/mp4", "audio", ((4, b"ftyp"),)),
    ".mp4": MediaKind("video/mp4", "video", ((4, b"ftyp"),)),
    ".mov": MediaKind("video/quicktime", "video", ((4, b"ftyp"), (4, b"moov"), (4, b"wide"))),
    ".webm": MediaKind("video/webm", "video", ((0, b"\x1a\x45\xdf\xa3"),)),
    ".mkv": MediaKind("video/x-matroska", "video", ((0, b"\x1a\x45\xdf\xa3"),)),
    ".avi": MediaKind("video/x-msvideo", "video", ((8, b"AVI "),)),
    ".txt": MediaKind("text/plain", "text"),
    ".md": MediaKind("text/markdown", "text"),
    ".json": MediaKind("application/json", "text"),
    ".pdf": MediaKind("application/pdf", None, ((0, b"%PDF-"),)),
    ".zip": MediaKind("application/zip", None, ((0, b"PK\x03\x04"), (0, b"PK\x05\x06"))),
    ".tar": MediaKind("application/x-tar", None, ((257, b"ustar"),)),
    ".gz": MediaKind("application/gzip", None, ((0, b"\x1f\x8b"),)),
    ".tgz": MediaKind("application/gzip", None, ((0, b"\x1f\x8b"),)),
}
SIGNATURE_BYTES = 262
OCTET_STREAM = MediaKind("application/octet-stream", None)

_RECORD_MEDIA_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
}


def suffix(name: str) -> str:
    lower = name.lower()
    if lower.endswith(".tar.gz"):
        return ".tar.gz"
    return Path(lower).suffix


def record_format(name: str) -> str | None:
    """jsonl, csv or parquet for record files; None for blobs."""
    return RECORD_FORMATS.get(suffix(name))


def media_kind(name: str) -> MediaKind:
    found = suffix(name)
    if found == ".tar.gz":
        return MEDIA[".gz"]
    return MEDIA.get(found, OCTET_STREAM)


def is_archive(name: str) -> bool:
    return suffix(name) in ARCHIVE_SUFFIXES


class Scanner(Protocol):
    """What a file's bytes are checked by while they stream in."""

    file: str
    records: int
    size_bytes: int
    stats: FileStats
    format: str | None

    @property
    def media_type(self) -> str: ...

    def feed(self, chunk: bytes) -> None: ...

    def finish(self) -> None: ...

    @property
    def sha256(self) -> str: ...


@dataclass
class BlobScanner:
    """A media file or any other blob: hashed and sized, its signature checked when its kind has one."""

    file: str
    kind: MediaKind = OCTET_STREAM
    records: int = 0
    size_bytes: int = 0
    stats: FileStats = field(default_factory=FileStats)
    format: str | None = None
    _head: bytearray = field(default_factory=bytearray)
    _digest: Any = field(default_factory=hashlib.sha256)

    @property
    def media_type(self) -> str:
        return self.kind.media_type

    def feed(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        self.size_bytes += len(chunk)
        if len(self._head) < SIGNATURE_BYTES:
            self._head += chunk[: SIGNATURE_BYTES - len(self._head)]

    def finish(self) -> None:
        if self.size_bytes == 0:
            raise InvalidRecords(self.file, 1, "the file is empty")
        head = bytes(self._head)
        if self.kind.signatures and not any(
            head[offset : offset + len(magic)] == magic for offset, magic in self.kind.signatures
        ):
            raise InvalidRecords(
                self.file, 1, f"the content is not {self.kind.media_type} (its first bytes do not match)"
            )

    @property
    def sha256(self) -> str:
        return str(self._digest.hexdigest())


@dataclass
class CsvScanner:
    """A CSV file with a header row: every row must have the header's columns; records are the rows
    as objects of strings (an empty cell is a missing field). Quoted fields may span lines."""

    file: str
    records: int = 0
    size_bytes: int = 0
    stats: FileStats = field(default_factory=FileStats)
    format: str | None = "csv"
    media_type: str = "text/csv"
    header: list[str] | None = None
    sink: list[dict[str, str]] | None = None
    """When set, every record is appended to it as well (for readers: drain it after each feed)."""
    _line: int = 0
    _pending: bytearray = field(default_factory=bytearray)
    _quotes: int = 0
    """Quote characters in `_pending` before `_scanned` (an odd count: inside a quoted field)."""
    _scanned: int = 0
    """How far `_pending` was searched for row ends."""
    _digest: Any = field(default_factory=hashlib.sha256)

    def feed(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        self.size_bytes += len(chunk)
        self._pending += chunk
        start, scanned = 0, self._scanned
        while (end := self._pending.find(b"\n", scanned)) != -1:
            self._quotes += self._pending.count(b'"', scanned, end)
            scanned = end + 1
            if self._quotes % 2 == 0:  # not inside a quoted field: the row ends here
                self._row(bytes(self._pending[start:end]))
                start, self._quotes = scanned, 0
        del self._pending[:start]
        self._scanned = scanned - start
        if len(self._pending) > MAX_LINE_BYTES:
            raise InvalidRecords(self.file, self._line + 1, f"a row longer than {MAX_LINE_BYTES} bytes")

    def finish(self) -> None:
        if self._pending:
            if self._pending.count(b'"') % 2:
                raise InvalidRecords(self.file, self._line + 1, "a quoted field is not closed")
            self._row(bytes(self._pending))
            self._pending.clear()
        if self.header is None:
            raise InvalidRecords(self.file, 1, "the file has no header row")
        if self.records == 0:
            raise InvalidRecords(self.file, max(self._line, 1), "the file holds no records")

    @property
    def sha256(self) -> str:
        return str(self._digest.hexdigest())

    def _row(self, raw: bytes) -> None:
        first = self._line + 1
        self._line += raw.count(b"\n") + 1
        if not raw.strip():
            return
        try:
            text = raw.decode("utf-8-sig" if first == 1 else "utf-8").rstrip("\r")
        except UnicodeDecodeError:
            raise InvalidRecords(self.file, first, "not UTF-8 text") from None
        try:
            cells = next(csv.reader(io.StringIO(text)))
        except csv.Error as error:
            raise InvalidRecords(self.file, first, f"not valid CSV ({error})") from None
        if self.header is None:
            names = [c.strip() for c in cells]
            if any(not n for n in names) or len(set(names)) != len(names):
                raise InvalidRecords(self.file, first, "the header needs distinct, non-empty column names")
            self.header = names
            return
        if len(cells) != len(self.header):
            raise InvalidRecords(
                self.file, first, f"{len(cells)} columns where the header has {len(self.header)}"
            )
        self.records += 1
        record = {name: cell for name, cell in zip(self.header, cells, strict=True) if cell != ""}
        self.stats.add(record)
        if self.sink is not None:
            self.sink.append(record)


def json_value(value: Any) -> Any:
    """A Parquet (Arrow) value as the JSON value records and statistics use."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_value(v) for v in value]
    return value


@dataclass
class ParquetScanner:
    """A Parquet file: spooled to a local file as it arrives (its footer comes last), then opened,
    its rows counted and read in batches for the statistics."""

    file: str
    work_dir: Path | None = None
    """Where it spools (the system's temporary directory when None)."""
    records: int = 0
    size_bytes: int = 0
    stats: FileStats = field(default_factory=FileStats)
    format: str | None = "parquet"
    media_type: str = "application/vnd.apache.parquet"
    columns: list[str] = field(default_factory=list)
    _spool: Any = None
    _digest: Any = field(default_factory=hashlib.sha256)

    def feed(self, chunk: bytes) -> None:
        if self._spool is None:
            if self.work_dir is not None:
                self.work_dir.mkdir(parents=True, exist_ok=True)
            self._spool = tempfile.NamedTemporaryFile(dir=self.work_dir, suffix=".parquet")
        self._digest.update(chunk)
        self.size_bytes += len(chunk)
        self._spool.write(chunk)

    def finish(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._spool is None:
            raise InvalidRecords(self.file, 1, "the file is empty")
        try:
            self._spool.flush()
            try:
                parquet = pq.ParquetFile(self._spool.name)
                self.columns = list(parquet.schema_arrow.names)
                for batch in parquet.iter_batches(batch_size=4096):
                    for row in batch.to_pylist():
                        self.stats.add({k: json_value(v) for k, v in row.items() if v is not None})
                        self.records += 1
            except (pa.ArrowException, OSError) as error:
                raise InvalidRecords(self.file, 1, f"not a readable Parquet file ({error})") from None
        finally:
            self._spool.close()
            self._spool = None
        if self.records == 0:
            raise InvalidRecords(self.file, 1, "the file holds no records")

    @property
    def sha256(self) -> str:
        return str(self._digest.hexdigest())


def scanner_for(name: str, work_dir: Path | None = None) -> Scanner:
    """The scanner that checks a file called `name` (Parquet spools under `work_dir`)."""
    match record_format(name):
        case "jsonl":
            return JsonlScanner(name)
        case "csv":
            return CsvScanner(name)
        case "parquet":
            return ParquetScanner(name, work_dir)
    return BlobScanner(name, media_kind(name))


def manifest_file(scanner: Scanner, object_key: str, name: str | None = None) -> ManifestFile:
    """The manifest entry of a scanned file stored at `object_key`."""
    return ManifestFile(
        name=name or scanner.file,
        object_key=object_key,
        sha256=scanner.sha256,
        size_bytes=scanner.size_bytes,
        record_count=scanner.records,
        format=scanner.format,
        media_type=scanner.media_type,
    )
