"""Requests of imports."""

from __future__ import annotations

from typing import Annotated, Literal

from forge_contracts.activities.dataset import FILE_NAME_PATTERN
from forge_contracts.events.base import Sha256
from forge_kit.types import NonNegativeInt64
from pydantic import BaseModel, ConfigDict, Field, model_validator

from forge_dataset.imports.s3 import S3Source
from forge_dataset.imports.sql import SqlSource


class LinkFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=4000, pattern=r"^[^\x00-\x20]+$", description="An http(s) URL.")
    name: str = Field(pattern=FILE_NAME_PATTERN, description="Its file name in the version.")
    sha256: Sha256 | None = Field(default=None, description="Checked after download when given.")
    size_bytes: NonNegativeInt64 | None = Field(default=None, description="Checked when given.")


class LinkSource(BaseModel):
    """Files fetched over HTTP(S) from public addresses (see docs/security.md on egress)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["link"]
    files: list[LinkFile] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _names(self) -> LinkSource:
        if len({f.name for f in self.files}) != len(self.files):
            raise ValueError("two files have the same name")
        return self


class WebHdfsSource(BaseModel):
    """The files under a path of an HDFS, read over WebHDFS as `user` (see docs/dataset.md)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["webhdfs"]
    url: str = Field(
        max_length=2000,
        pattern=r"^https?://[^\s/?#@]+(/[^\s?#]*)?$",
        description="The NameNode's HTTP address (WebHDFS), e.g. http://namenode:9870.",
    )
    path: str = Field(
        max_length=4000, pattern=r"^/[^\x00-\x1f]*$", description="An absolute HDFS path: a folder or a file."
    )
    user: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$", description="Read as this HDFS user.")
    include: str | None = Field(
        default=None,
        max_length=500,
        description="Only files whose path below `path` matches this glob (`*.jsonl`; `*` also crosses `/`).",
    )


ImportSource = Annotated[LinkSource | WebHdfsSource | S3Source | SqlSource, Field(discriminator="type")]
"""Every source an import can read from, told apart by `type` (add a source's model here)."""


class ImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: ImportSource = Field(description="Where the records come from.")
