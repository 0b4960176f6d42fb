"""The body of `POST .../versions/{vid}/convert`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ConvertRequest(BaseModel):
    """Write every JSONL and CSV record file of a version as Parquet, into a new version."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["parquet"] = Field(default="parquet", description="The record format to write.")
    compression: Literal["zstd", "snappy", "gzip", "none"] = Field(default="zstd")
    row_group_rows: int = Field(
        default=65_536, ge=1_000, le=1_048_576, description="Rows per Parquet row group (and per batch held)."
    )
