"""Imports from SQL databases (DS-1) on the real stack: a query on a second PostgreSQL database (a
database and role of its own in the stack's server, not the dataset service's) and on a private MariaDB,
run read-only with a server-side cursor into Parquet shards that become the version's files; a bad
query fails the task with the database's reason and publishes nothing."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from forge_kit.stack_env import StackSettings

from tests.conftest import _admin
from tests.services.dataset.conftest import DatasetService
from tests.services.dataset.mariadb import MariaDb
from tests.services.dataset.test_connections import connections_key as connections_key
from tests.services.dataset.test_connections import register
from tests.services.dataset.test_dataset_service import ACME, create_dataset
from tests.services.dataset.test_splits import split_done

ROWS = 2500


@asynccontextmanager
async def postgres_source(stack_settings: StackSettings) -> AsyncIterator[dict[str, Any]]:
    """A database and login role of their own on the stack's PostgreSQL, with a `tickets` table of
    ROWS rows; the connection fields to register it. Dropped afterwards."""
    name, password = f"src_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    await _admin(stack_settings, f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    await _admin(stack_settings, f"CREATE DATABASE {name} OWNER {name}")
    try:
        dsn = f"postgresql://{name}:{password}@{stack_settings.pg_host}:{stack_settings.pg_port}/{name}"
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(
                """
                CREATE TABLE tickets (
                    id int PRIMARY KEY, title text, score double precision, price numeric(10, 2),
                    open boolean, created timestamptz, tags text[], payload jsonb, ref uuid, raw bytea,
                    day date
                );
                INSERT INTO tickets
                SELECT i, 'ticket ' || i, i * 0.5, i * 1.25, i % 2 = 0,
                       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour', ARRAY['a', 'b'],
                       jsonb_build_object('n', i), gen_random_uuid(), '\\x0102'::bytea, date '2024-01-01' + i
                FROM generate_series(1, 2500) AS i;
                """
            )
        finally:
            await connection.close()
        yield {
            "host": stack_settings.pg_host,
            "port": stack_settings.pg_port,
            "database": name,
            "username": name,
            "secret": password,
        }
    finally:
        await _admin(stack_settings, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await _admin(stack_settings, f"DROP ROLE IF EXISTS {name}")


@pytest.fixture
async def pg_connection(dataset_service: DatasetService, stack_settings: StackSettings) -> AsyncIterator[str]:
    async with postgres_source(stack_settings) as fields:
        yield (await register(dataset_service, {"name": "warehouse", "kind": "postgres", **fields}))["id"]


@pytest.fixture(scope="session")
def shop(mariadb: MariaDb) -> MariaDb:
    """The MariaDB `shop` database with an `orders` table of ROWS rows."""
    root = mariadb.connect("shop")
    with root.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE orders (id INT PRIMARY KEY, item VARCHAR(64), qty SMALLINT, total DECIMAL(10, 2),"
            " note TEXT, placed DATETIME, blob_col BLOB)"
        )
        cursor.executemany(
            "INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    i,
                    f"item {i}",
                    i % 7,
                    i * 1.5,
                    None if i % 3 else "fragile",
                    f"2024-02-01 10:{i % 60:02d}:00",
                    b"\x00\x01",
                )
                for i in range(1, ROWS + 1)
            ],
        )
    root.close()
    return mariadb


@pytest.fixture
async def mysql_connection(dataset_service: DatasetService, shop: MariaDb) -> str:
    body = {
        "name": "shop",
        "kind": "mysql",
        "host": shop.host,
        "port": shop.port,
        "database": shop.database,
        "username": shop.user,
        "secret": shop.password,
    }
    return str((await register(dataset_service, body))["id"])


async def _import(svc: DatasetService, dataset_id: str, connection_id: str, query: str, **extra: Any) -> Any:
    source = {"type": "sql", "connection_id": connection_id, "query": query, **extra}
    started = await svc.http.post(f"/datasets/{dataset_id}/imports", json={"source": source}, headers=ACME)
    assert started.status_code == 202, started.text
    return await split_done(svc, dataset_id, started.json()["id"])


async def _version(svc: DatasetService, dataset_id: str, version_id: str) -> dict[str, Any]:
    return dict((await svc.http.get(f"/datasets/{dataset_id}/versions/{version_id}", headers=ACME)).json())


async def _table(svc: DatasetService, file: dict[str, Any]) -> pa.Table:
    return pq.read_table(io.BytesIO(await svc.store.read_all(file["object_key"])))


async def test_a_postgres_query_becomes_parquet_shards_of_a_published_version(
    dataset_service: DatasetService, pg_connection: str
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    done = await _import(svc, dataset_id, pg_connection, "SELECT * FROM tickets ORDER BY id", shard_rows=1000)

    assert done["state"] == "succeeded", done
    assert done["stats"]["records"] == ROWS and done["stats"]["files"] == 3
    version = await _version(svc, dataset_id, done["output_version_id"])
    assert (version["state"], version["source"]) == ("published", "database")
    files = sorted(version["files"], key=lambda f: f["name"])
    assert [(f["name"], f["record_count"]) for f in files] == [
        ("part-00000.parquet", 1000),
        ("part-00001.parquet", 1000),
        ("part-00002.parquet", 500),
    ]
    first = await _table(svc, files[0])
    types = {field.name: field.type for field in first.schema}
    assert types == {
        "id": pa.int32(),
        "title": pa.string(),
        "score": pa.float64(),
        "price": pa.float64(),
        "open": pa.bool_(),
        "created": pa.timestamp("us", tz="UTC"),
        "tags": pa.list_(pa.string()),
        "payload": pa.string(),
        "ref": pa.string(),
        "raw": pa.binary(),
        "day": pa.date32(),
    }
    row = first.slice(0, 1).to_pylist()[0]
    assert (row["id"], row["title"], row["price"], row["tags"], row["raw"]) == (
        1,
        "ticket 1",
        1.25,
        ["a", "b"],
        b"\x01\x02",
    )
    stats = (
        await svc.http.get(f"/datasets/{dataset_id}/versions/{version['id']}/stats", headers=ACME)
    ).json()
    assert stats["fields"]["title"]["present"] == ROWS


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("SELEC nothing", "syntax error"),
        ("SELECT * FROM no_such_table", 'relation "no_such_table" does not exist'),
        ("DELETE FROM tickets RETURNING id", "the query tried to write"),
        ("SELECT 1; DROP TABLE tickets", "cannot insert multiple commands"),
        ("SELECT * FROM tickets WHERE false", "the query returned no rows"),
    ],
    ids=["syntax", "missing-table", "write", "two-statements", "no-rows"],
)
async def test_a_failing_postgres_query_fails_the_task_and_publishes_nothing(
    dataset_service: DatasetService, pg_connection: str, query: str, reason: str
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    done = await _import(svc, dataset_id, pg_connection, query)

    assert done["state"] == "failed" and reason in done["error"], done
    assert done["attempt"] == 1
    assert (await svc.http.get(f"/datasets/{dataset_id}/versions", headers=ACME)).json() == []


async def test_a_mysql_query_becomes_parquet_shards_of_a_published_version(
    dataset_service: DatasetService, mysql_connection: str
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    done = await _import(
        svc, dataset_id, mysql_connection, "SELECT * FROM orders ORDER BY id", shard_rows=2000
    )

    assert done["state"] == "succeeded", done
    version = await _version(svc, dataset_id, done["output_version_id"])
    files = sorted(version["files"], key=lambda f: f["name"])
    assert [(f["name"], f["record_count"]) for f in files] == [
        ("part-00000.parquet", 2000),
        ("part-00001.parquet", 500),
    ]
    table = await _table(svc, files[0])
    types = {field.name: field.type for field in table.schema}
    assert types == {
        "id": pa.int64(),
        "item": pa.string(),
        "qty": pa.int16(),
        "total": pa.float64(),
        "note": pa.string(),
        "placed": pa.timestamp("us"),
        "blob_col": pa.binary(),
    }
    assert table.slice(2, 1).to_pylist()[0]["note"] == "fragile"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("SELECT * FROM nothing_here", "doesn't exist"),
        ("SELEC 1", "error in your SQL syntax"),
        ("SELECT 1; DELETE FROM orders", "error in your SQL syntax"),
    ],
    ids=["missing-table", "syntax", "two-statements"],
)
async def test_a_failing_mysql_query_fails_the_task_and_publishes_nothing(
    dataset_service: DatasetService, mysql_connection: str, shop: MariaDb, query: str, reason: str
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")

    done = await _import(svc, dataset_id, mysql_connection, query)

    assert done["state"] == "failed" and reason in done["error"], done
    assert (await svc.http.get(f"/datasets/{dataset_id}/versions", headers=ACME)).json() == []
    root = shop.connect("shop")
    with root.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM orders")
        assert cursor.fetchone() == (ROWS,)
    root.close()


async def test_a_mysql_connection_with_a_wrong_password_is_a_422(
    dataset_service: DatasetService, shop: MariaDb
) -> None:
    body = {
        "name": "shop",
        "kind": "mysql",
        "host": shop.host,
        "port": shop.port,
        "database": shop.database,
        "username": shop.user,
        "secret": "wrong",
    }

    refused = await dataset_service.http.post("/connections", json=body, headers=ACME)

    assert refused.status_code == 422 and "Access denied" in refused.json()["detail"], refused.text
