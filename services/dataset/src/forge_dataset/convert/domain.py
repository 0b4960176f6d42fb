"""Records to Parquet: an Arrow schema from a file's statistics, and a writer fed record lines.

Each field's Arrow type comes from the JSON types the scan saw in it (`FileStats`), so the schema is
fixed before the first row is written and batches never disagree: strings, integers (int64), numbers
(float64; integers mixed with numbers too) and booleans keep their type; a field that holds objects,
arrays or more than one kind of value is written as its JSON text, and named in the file's metadata
(`forge.json_fields`) so a reader can decode it. A missing field is a null. Memory: one batch of rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from forge_dataset.statistics.domain import MAX_TRACKED_FIELDS, FileStats

SCALARS = {
    frozenset({"string"}): pa.string(),
    frozenset({"integer"}): pa.int64(),
    frozenset({"number"}): pa.float64(),
    frozenset({"integer", "number"}): pa.float64(),
    frozenset({"boolean"}): pa.bool_(),
}
JSON_FIELDS_KEY = b"forge.json_fields"


class ConvertError(ValueError):
    """The records cannot be written as asked (told to the user as a 422)."""


def arrow_schema(stats: FileStats) -> tuple[pa.Schema, frozenset[str]]:
    """The schema of a record file with these statistics, and the fields written as JSON text."""
    if stats.other_fields:
        raise ConvertError(f"the records have more than {MAX_TRACKED_FIELDS} fields")
    fields, as_json = [], set()
    for name, field in stats.fields.items():
        kinds = frozenset(field.types) - {"null"}
        kind = SCALARS.get(kinds) if kinds else pa.string()
        if kind is None:
            kind = pa.string()
            as_json.add(name)
        fields.append(pa.field(name, kind, nullable=True))
    metadata = {JSON_FIELDS_KEY: ",".join(sorted(as_json)).encode()} if as_json else None
    return pa.schema(fields, metadata=metadata), frozenset(as_json)


class ParquetSink:
    """Record lines (JSON objects) into one Parquet file, a row group at a time."""

    def __init__(self, path: Path, stats: FileStats, compression: str, row_group_rows: int) -> None:
        self.schema, self.as_json = arrow_schema(stats)
        self.row_group_rows = row_group_rows
        self.rows = 0
        self._batch: list[dict[str, Any]] = []
        self._writer = pq.ParquetWriter(
            path, self.schema, compression=None if compression == "none" else compression
        )

    def add(self, lines: list[bytes]) -> None:
        for line in lines:
            record = orjson.loads(line)
            if not isinstance(record, dict):
                raise ConvertError(f"record {self.rows + 1} is not a JSON object")
            for name in self.as_json & record.keys():
                if record[name] is not None:
                    record[name] = orjson.dumps(record[name]).decode()
            self._batch.append(record)
            self.rows += 1
            if len(self._batch) >= self.row_group_rows:
                self._flush()

    def _flush(self) -> None:
        if not self._batch:
            return
        try:
            table = pa.Table.from_pylist(self._batch, schema=self.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as error:
            raise ConvertError(f"rows {self.rows - len(self._batch) + 1}..{self.rows}: {error}") from None
        self._writer.write_table(table, row_group_size=self.row_group_rows)
        self._batch.clear()

    def close(self) -> None:
        try:
            self._flush()
        finally:
            self._writer.close()


def parquet_name(name: str) -> str:
    """`train.jsonl` -> `train.parquet`, `tables/a.csv` -> `tables/a.parquet`."""
    stem, _, _ = name.rpartition(".")
    return f"{stem}.parquet"
