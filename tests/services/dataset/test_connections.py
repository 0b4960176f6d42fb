"""Connections (DS-1) on the real stack: registered after connecting with them (the stack's MinIO, the
stack's PostgreSQL), their secrets sealed in the database and never shown, never visible to another
tenant, wrong credentials and private addresses refused with a clear 422."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from forge_kit.stack_env import StackSettings

from tests.services.dataset.conftest import DatasetService
from tests.services.dataset.test_dataset_service import ACME, GLOBEX

CONNECTIONS_KEY = "test-connections-key-5f0c3b8e"


@pytest.fixture(autouse=True)
def connections_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dataset service under test seals connection secrets with this key."""
    monkeypatch.setenv("FORGE_DATASET_CONNECTIONS_KEY", CONNECTIONS_KEY)


def s3_connection(stack_settings: StackSettings, in_bucket: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": f"minio-{uuid.uuid4().hex[:8]}",
        "kind": "s3",
        "endpoint": stack_settings.s3_endpoint,
        "region": stack_settings.s3_region,
        "bucket": in_bucket,
        "access_key": stack_settings.s3_access_key,
        "secret": stack_settings.s3_secret_key.get_secret_value(),
        **overrides,
    }


async def register(svc: DatasetService, body: dict[str, Any]) -> dict[str, Any]:
    response = await svc.http.post("/connections", json=body, headers=ACME)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_an_s3_connection_is_registered_without_ever_showing_its_secret(
    dataset_service: DatasetService, stack_settings: StackSettings, s3_bucket: str, database: str
) -> None:
    svc = dataset_service
    body = s3_connection(stack_settings, s3_bucket)
    secret = body["secret"]

    created = await register(svc, body)

    assert created["secret_set"] is True and created["verified_at"]
    assert (created["kind"], created["bucket"], created["endpoint"]) == ("s3", s3_bucket, body["endpoint"])
    listed = (await svc.http.get("/connections", headers=ACME)).json()
    read = (await svc.http.get(f"/connections/{created['id']}", headers=ACME)).json()
    assert [c["id"] for c in listed] == [created["id"]]
    for shown in (created, read, *listed):
        assert secret not in str(shown) and "secret" not in shown
    stored = await _stored_secret(database, created["id"])
    assert secret.encode() not in stored and len(stored) > len(secret)


async def _stored_secret(dsn: str, connection_id: str) -> bytes:
    connection = await asyncpg.connect(dsn)
    try:
        return bytes(
            await connection.fetchval("SELECT sealed_secret FROM connections WHERE id = $1", connection_id)
        )
    finally:
        await connection.close()


async def test_another_tenant_cannot_see_or_remove_a_connection(
    dataset_service: DatasetService, stack_settings: StackSettings, s3_bucket: str
) -> None:
    svc = dataset_service
    created = await register(svc, s3_connection(stack_settings, s3_bucket))

    read = await svc.http.get(f"/connections/{created['id']}", headers=GLOBEX)
    removed = await svc.http.delete(f"/connections/{created['id']}", headers=GLOBEX)
    listed = await svc.http.get("/connections", headers=GLOBEX)

    assert (read.status_code, removed.status_code, listed.json()) == (404, 404, [])
    assert (await svc.http.get(f"/connections/{created['id']}", headers=ACME)).status_code == 200


async def test_a_removed_connection_is_gone(
    dataset_service: DatasetService, stack_settings: StackSettings, s3_bucket: str
) -> None:
    svc = dataset_service
    created = await register(svc, s3_connection(stack_settings, s3_bucket))

    removed = await svc.http.delete(f"/connections/{created['id']}", headers=ACME)

    assert removed.status_code == 204
    assert (await svc.http.get(f"/connections/{created['id']}", headers=ACME)).status_code == 404


async def test_two_connections_of_one_name_conflict(
    dataset_service: DatasetService, stack_settings: StackSettings, s3_bucket: str
) -> None:
    svc = dataset_service
    body = s3_connection(stack_settings, s3_bucket)
    await register(svc, body)

    again = await svc.http.post("/connections", json=body, headers=ACME)

    assert again.status_code == 409, again.text


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"secret": "not-the-secret-key"}, "the secret key is wrong"),
        ({"access_key": "nobody-knows-me"}, "the access key is not known"),
        ({"bucket": "no-such-bucket-here"}, "the bucket does not exist"),
        ({"endpoint": "http://10.20.30.40:9000"}, "not a public address"),
        ({"endpoint": "http://169.254.169.254"}, "not a public address"),
    ],
    ids=["secret", "access-key", "bucket", "private-address", "metadata-address"],
)
async def test_a_connection_that_does_not_work_is_a_422_saying_why(
    dataset_service: DatasetService,
    stack_settings: StackSettings,
    s3_bucket: str,
    overrides: dict[str, Any],
    reason: str,
) -> None:
    svc = dataset_service
    body = s3_connection(stack_settings, s3_bucket, **overrides)

    refused = await svc.http.post("/connections", json=body, headers=ACME)

    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert reason in refused.json()["detail"] and body["secret"] not in refused.text
    assert (await svc.http.get("/connections", headers=ACME)).json() == []


@pytest.fixture
async def pg_role(stack_settings: StackSettings) -> AsyncIterator[dict[str, Any]]:
    """A login role of its own on a database of its own in the stack's PostgreSQL (not the dataset
    service's), dropped afterwards."""
    from tests.services.dataset.test_sql_imports import postgres_source

    async with postgres_source(stack_settings) as found:
        yield found


async def test_a_postgres_connection_is_verified_with_its_password(
    dataset_service: DatasetService, pg_role: dict[str, Any]
) -> None:
    svc = dataset_service
    body = {"name": "warehouse", "kind": "postgres", **pg_role}

    created = await register(svc, body)
    wrong = await svc.http.post(
        "/connections", json={**body, "name": "wrong", "secret": "nope"}, headers=ACME
    )
    missing = await svc.http.post(
        "/connections", json={**body, "name": "missing", "database": "no_such_db"}, headers=ACME
    )

    assert (created["host"], created["port"], created["secret_set"]) == (body["host"], body["port"], True)
    assert wrong.status_code == 422 and "user name or password is wrong" in wrong.json()["detail"], wrong.text
    assert missing.status_code == 422 and "does not exist" in missing.json()["detail"], missing.text


async def test_a_connection_missing_fields_of_its_kind_is_refused(dataset_service: DatasetService) -> None:
    refused = await dataset_service.http.post(
        "/connections", json={"name": "x", "kind": "postgres", "secret": "s"}, headers=ACME
    )

    assert refused.status_code == 422
    assert "needs host, database, username" in refused.json()["detail"]
