"""Requests and views of connections. A view never holds the secret: `secret_set` says one is stored."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from forge_kit.types import NonNegativeInt32
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

ConnectionKind = Literal["s3", "postgres", "mysql"]
SQL_KINDS = ("postgres", "mysql")
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306}
HOST_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]{2,45}\]?$"
"""A DNS name or an IP address (no scheme, port, user or path)."""
Text = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f]+$")]

_S3_FIELDS = ("endpoint", "bucket", "access_key")
_SQL_FIELDS = ("host", "database", "username")


class ConnectionCreate(BaseModel):
    """A connection to register: an S3 bucket (`endpoint`, `bucket`, `region`, `access_key`) or a SQL
    database (`host`, `port`, `database`, `username`); `secret` is the secret key or the password."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$", description="Unique in the tenant.")
    kind: ConnectionKind
    endpoint: str | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^https?://[^\x00-\x20/?#@]+/?$",
        description="S3: the endpoint URL (`https://s3.eu-west-1.amazonaws.com`, a MinIO).",
    )
    region: str | None = Field(default=None, max_length=64, pattern=r"^[a-z0-9-]+$", description="S3.")
    bucket: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="S3: the bucket."
    )
    access_key: Text | None = Field(default=None, description="S3: the access key id.")
    host: str | None = Field(default=None, max_length=253, pattern=HOST_PATTERN, description="SQL.")
    port: NonNegativeInt32 | None = Field(default=None, ge=1, le=65535, description="SQL: default per kind.")
    database: Text | None = Field(default=None, description="SQL: the database to connect to.")
    username: Text | None = Field(default=None, description="SQL: the user to connect as.")
    secret: SecretStr = Field(
        min_length=1, max_length=4096, description="The secret key (S3) or password (SQL): never echoed."
    )

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> ConnectionCreate:
        needed, foreign = (
            (_S3_FIELDS, (*_SQL_FIELDS, "port"))
            if self.kind == "s3"
            else (_SQL_FIELDS, (*_S3_FIELDS, "region"))
        )
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.kind} connection needs {', '.join(missing)}")
        extra = [name for name in foreign if getattr(self, name) is not None]
        if extra:
            raise ValueError(f"a {self.kind} connection has no {', '.join(extra)}")
        if "\x00" in self.secret.get_secret_value():
            raise ValueError("the secret holds a NUL character")
        return self


class ConnectionView(BaseModel):
    id: str
    name: str
    kind: ConnectionKind
    endpoint: str | None = None
    region: str | None = None
    bucket: str | None = None
    access_key: str | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    username: str | None = None
    secret_set: bool = Field(description="Whether a secret is stored (it is never shown).")
    created_by: str | None
    created_at: datetime
    verified_at: datetime | None
