"""The SQL source: a user's query on a registered PostgreSQL or MySQL connection, run in a READ ONLY
transaction with a statement timeout, its rows streamed through a server-side cursor (asyncpg's cursor;
aiomysql's SSCursor) a batch at a time into Parquet shards of `shard_rows` rows in the task's work dir
(`part-00000.parquet`, ...), each then ingested as a file of the version. Column types map to Arrow
types (sql_types); memory holds one batch, never the result. The database is let go before the
first shard is stored, so a slow upload never holds a transaction open."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq
import pymysql
from forge_kit.auth import Principal
from forge_kit.errors import Unprocessable
from pydantic import BaseModel, ConfigDict, Field

from forge_dataset.connections import clients
from forge_dataset.connections import service as connections
from forge_dataset.connections.clients import Credentials
from forge_dataset.deps import Deps
from forge_dataset.imports import sql_types
from forge_dataset.imports.sources import Listing, RemoteFile, Stream
from forge_dataset.tasks.runner import TaskContext

KINDS = ("postgres", "mysql")
BATCH_ROWS = 10_000
"""Rows fetched (and written as one row group) at a time."""
CHUNK_BYTES = 1024 * 1024


class SqlSource(BaseModel):
    """The rows of a read-only query on a SQL connection (see `POST /connections`), as Parquet shards."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["sql"]
    connection_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    query: str = Field(
        min_length=1, max_length=100_000, pattern=r"^[^\x00]+$", description="One SELECT statement."
    )
    shard_rows: int = Field(default=1_000_000, ge=1, le=100_000_000, strict=True)


async def check(deps: Deps, caller: Principal, source: SqlSource) -> None:
    """At request time: the connection is one of the caller's tenant's SQL connections (else 404/422)."""
    await connections.credentials(deps, caller, source.connection_id, KINDS)


class Shards:
    """Parquet files of at most `shard_rows` rows each, written batch by batch (off the event loop)."""

    def __init__(self, folder: Path, shard_rows: int) -> None:
        self.folder, self.shard_rows = folder, shard_rows
        self.paths: list[Path] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._in_shard = 0

    def _write(self, table: pa.Table) -> None:
        start = 0
        while start < table.num_rows:
            if self._writer is None:
                path = self.folder / f"part-{len(self.paths):05d}.parquet"
                self._writer = pq.ParquetWriter(path, table.schema, compression="zstd")
                self.paths.append(path)
            take = min(self.shard_rows - self._in_shard, table.num_rows - start)
            self._writer.write_table(table.slice(start, take))
            start, self._in_shard = start + take, self._in_shard + take
            if self._in_shard == self.shard_rows:
                self._writer.close()
                self._writer, self._in_shard = None, 0
        self.rows += table.num_rows

    async def write(self, table: pa.Table) -> None:
        await asyncio.to_thread(self._write, table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class Batches:
    """Rows into Arrow tables: the columns' types from the database's, the rest from the first batch."""

    def __init__(self, columns: Sequence[sql_types.Column]) -> None:
        self.columns = columns
        self.schema: pa.Schema | None = None

    def table(self, rows: Sequence[Sequence[Any]]) -> pa.Table:
        if self.schema is None:
            self.schema = pa.schema(
                [
                    pa.field(c.name, sql_types.settle(c, [row[i] for row in rows]))
                    for i, c in enumerate(self.columns)
                ]
            )
        arrays = []
        for i, (column, field) in enumerate(zip(self.columns, self.schema, strict=True)):
            values = [column.convert(row[i], field.type) for row in rows]
            try:
                arrays.append(pa.array(values, type=field.type))
            except (pa.ArrowException, OverflowError, TypeError, ValueError) as error:
                raise Unprocessable(f"column {column.name!r} ({column.sql_type}): {error}") from None
        return pa.Table.from_arrays(arrays, schema=self.schema)


async def _postgres_rows(credentials: Credentials, deps: Deps, query: str, shards: Shards) -> None:
    connection = await clients.postgres(credentials, deps.import_allowed_networks)
    timeout_ms = int(deps.sql_import_timeout_s * 1000)
    try:
        async with connection.transaction(readonly=True, isolation="repeatable_read"):
            await connection.execute(f"SET LOCAL statement_timeout = {timeout_ms}")
            await connection.execute(f"SET LOCAL idle_in_transaction_session_timeout = {timeout_ms}")
            statement = await connection.prepare(query)
            columns = [sql_types.postgres_column(a.name, a.type.name) for a in statement.get_attributes()]
            if not columns:
                raise Unprocessable("the query returns no columns (is it a SELECT?)")
            batches = Batches(columns)
            cursor = await statement.cursor()
            while rows := await cursor.fetch(BATCH_ROWS):
                await shards.write(batches.table(rows))
    except asyncpg.ReadOnlySQLTransactionError:
        raise Unprocessable("the query tried to write: imports only read (READ ONLY transaction)") from None
    except asyncpg.QueryCanceledError:
        raise Unprocessable(
            f"the query ran longer than {deps.sql_import_timeout_s:g} s and was stopped"
        ) from None
    except (asyncpg.PostgresSyntaxError, asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError) as error:
        raise Unprocessable(f"the query failed: {error}") from None
    except asyncpg.PostgresError as error:
        if error.sqlstate and error.sqlstate[:2] in (
            "0A",
            "22",
            "23",
            "25",
            "28",
            "2B",
            "3D",
            "3F",
            "42",
            "44",
        ):
            raise Unprocessable(f"the query failed: {error}") from None
        raise RuntimeError(f"the query failed: {error}") from None
    except (OSError, asyncpg.InterfaceError) as error:
        raise clients.Unreachable(
            f"the connection to the database was lost ({type(error).__name__})"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), 10)


_MYSQL_RETRYABLE = {1040, 1205, 1213, 2006, 2013}
"""Too many connections, lock wait timeout, deadlock, server gone, connection lost."""


async def _mysql_rows(credentials: Credentials, deps: Deps, query: str, shards: Shards) -> None:
    connection = await clients.mysql(credentials, deps.import_allowed_networks)
    try:
        async with connection.cursor() as cursor:
            if "mariadb" in connection.get_server_info().lower():
                await cursor.execute(f"SET SESSION max_statement_time = {deps.sql_import_timeout_s:g}")
            else:
                await cursor.execute(
                    f"SET SESSION max_execution_time = {int(deps.sql_import_timeout_s * 1000)}"
                )
            await cursor.execute("START TRANSACTION READ ONLY")
            await cursor.execute(query)
            if not cursor.description:
                raise Unprocessable("the query returns no columns (is it a SELECT?)")
            batches = Batches([sql_types.mysql_column(d[0], d[1]) for d in cursor.description])
            while rows := await cursor.fetchmany(BATCH_ROWS):
                await shards.write(batches.table(rows))
            await cursor.execute("ROLLBACK")
    except pymysql.err.MySQLError as error:
        code = error.args[0] if error.args else None
        message = error.args[1] if len(error.args) > 1 else str(error)
        if code == 1792:
            raise Unprocessable(
                "the query tried to write: imports only read (READ ONLY transaction)"
            ) from None
        if code in (1969, 3024):
            raise Unprocessable(
                f"the query ran longer than {deps.sql_import_timeout_s:g} s and was stopped"
            ) from None
        if code in _MYSQL_RETRYABLE or isinstance(error, pymysql.err.InternalError):
            raise RuntimeError(f"the query failed: MySQL error {code}: {message}") from None
        raise Unprocessable(f"the query failed: MySQL error {code}: {message}") from None
    finally:
        connection.close()


_RUNNERS: dict[str, Callable[[Credentials, Deps, str, Shards], Any]] = {
    "postgres": _postgres_rows,
    "mysql": _mysql_rows,
}


def _local(path: Path, listing: Listing) -> RemoteFile:
    size = path.stat().st_size

    @asynccontextmanager
    async def opened() -> AsyncIterator[Stream]:
        with path.open("rb") as file:

            async def chunks() -> AsyncIterator[bytes]:
                while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
                    yield chunk

            yield Stream(chunks(), size)

    return RemoteFile(name=path.name, open=opened, size_bytes=size, listing=listing)


async def files(ctx: TaskContext, source: SqlSource) -> AsyncIterator[RemoteFile]:
    credentials = await connections.credentials(ctx.deps, ctx.caller, source.connection_id, KINDS)
    folder = Path(tempfile.mkdtemp(prefix=f"sql-import-{ctx.task.id}-", dir=ctx.deps.work_dir))
    try:
        shards = Shards(folder, source.shard_rows)
        await ctx.report(0.0, phase="querying", force=True)
        try:
            await asyncio.wait_for(
                _RUNNERS[credentials.kind](credentials, ctx.deps, source.query, shards),
                ctx.deps.sql_import_timeout_s + 60,
            )
        except TimeoutError:
            raise Unprocessable(
                f"the query ran longer than {ctx.deps.sql_import_timeout_s:g} s and was stopped"
            ) from None
        finally:
            shards.close()
        if shards.rows == 0:
            raise Unprocessable("the query returned no rows")
        await ctx.report(0.0, phase="storing", rows=shards.rows, force=True)
        listing = Listing(len(shards.paths), sum(path.stat().st_size for path in shards.paths))
        for path in shards.paths:
            yield _local(path, listing)
            path.unlink(missing_ok=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
