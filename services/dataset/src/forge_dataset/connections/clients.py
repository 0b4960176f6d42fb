"""Clients of registered connections, opened through the kit's egress guard: an S3 client on the user's
endpoint, a PostgreSQL or MySQL connection to the user's host (at the address that was checked, so a
second DNS answer cannot swap it for an internal one), with short timeouts. A connection refused for
what the user must fix (credentials, a missing bucket or database, an address that is not public) is
`Refused` (a 422); one that could not be reached is `Unreachable` (worth retrying)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aioboto3
import aiomysql
import asyncpg
import pymysql
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from forge_kit.egress import EgressFailed, EgressRefused, check_url
from forge_kit.errors import Unprocessable
from pymysql.constants import CLIENT

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
_S3_CONFIG = Config(
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
    retries={"max_attempts": 2, "mode": "standard"},
    s3={"addressing_style": "path"},
)
_REFUSING_S3_CODES = {
    "AccessDenied": "the credentials may not read the bucket",
    "InvalidAccessKeyId": "the access key is not known to the endpoint",
    "SignatureDoesNotMatch": "the secret key is wrong",
    "NoSuchBucket": "the bucket does not exist",
    "403": "the credentials may not read the bucket",
    "404": "the bucket does not exist",
    "301": "the bucket is in another region",
    "PermanentRedirect": "the bucket is in another region",
    "AuthorizationHeaderMalformed": "the region is wrong",
}
_MYSQL_REFUSING = {1044, 1045, 1049, 1698}
"""Access denied to the database, wrong user or password, unknown database."""


class Refused(Unprocessable):
    """The connection refuses us for a reason the user must fix."""


class Unreachable(RuntimeError):
    """The connection's endpoint or host could not be reached (it may come back)."""


@dataclass(frozen=True)
class Credentials:
    """A registered connection with its secret opened, for the length of one use; never logged."""

    id: str
    name: str
    kind: str
    options: dict[str, Any]
    secret: str = field(repr=False)

    def option(self, name: str) -> Any:
        return self.options.get(name)


async def _checked_address(url: str, allowed_networks: tuple[str, ...], what: str) -> tuple[str, str]:
    """The address `url`'s host resolves to, if the egress guard lets it be reached (else Refused)."""
    try:
        target = await check_url(url, allowed_networks)
    except EgressRefused as error:
        raise Refused(f"{what}: {error}") from None
    except EgressFailed as error:
        raise Refused(f"{what}: {error}") from None
    return target.host, target.address


def s3_refusal(error: ClientError, what: str) -> Refused | None:
    """The reason an S3 error is the user's to fix, if it is one."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    reason = _REFUSING_S3_CODES.get(code)
    return Refused(f"{what}: {reason} ({code})") if reason else None


@asynccontextmanager
async def s3(credentials: Credentials, allowed_networks: tuple[str, ...]) -> AsyncIterator[Any]:
    """An S3 client on the connection's endpoint with its credentials (path-style addressing; over
    plain http the checked address itself is used)."""
    endpoint = str(credentials.option("endpoint"))
    _, address = await _checked_address(endpoint, allowed_networks, f"connection {credentials.name!r}")
    parts = urlsplit(endpoint)
    if parts.scheme == "http":
        host = f"[{address}]" if ":" in address else address
        endpoint = urlunsplit(parts._replace(netloc=f"{host}:{parts.port or 80}"))
    client = aioboto3.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=str(credentials.option("access_key")),
        aws_secret_access_key=credentials.secret,
        region_name=str(credentials.option("region") or "us-east-1"),
        config=_S3_CONFIG,
    )
    async with client as opened:
        yield opened


async def _sql_address(credentials: Credentials, allowed_networks: tuple[str, ...]) -> tuple[str, int]:
    host, port = str(credentials.option("host")), int(credentials.option("port"))
    bracketed = f"[{host.strip('[]')}]" if ":" in host else host
    _, address = await _checked_address(
        f"http://{bracketed}:{port}/", allowed_networks, f"connection {credentials.name!r}"
    )
    return address, port


async def postgres(credentials: Credentials, allowed_networks: tuple[str, ...]) -> asyncpg.Connection:
    """A PostgreSQL connection as the connection's user (close it when done)."""
    address, port = await _sql_address(credentials, allowed_networks)
    what = f"connection {credentials.name!r}"
    try:
        connection: asyncpg.Connection = await asyncpg.connect(
            host=address,
            port=port,
            user=str(credentials.option("username")),
            password=credentials.secret,
            database=str(credentials.option("database")),
            timeout=CONNECT_TIMEOUT_S,
            server_settings={"application_name": "forge-dataset-import"},
        )
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
        raise Refused(f"{what}: the user name or password is wrong") from None
    except asyncpg.InvalidCatalogNameError:
        raise Refused(f"{what}: the database {credentials.option('database')!r} does not exist") from None
    except asyncpg.PostgresError as error:
        raise Refused(f"{what}: the server refused the connection ({type(error).__name__})") from None
    except (OSError, TimeoutError, asyncpg.InterfaceError) as error:
        raise Unreachable(f"{what}: {address}:{port} could not be reached ({type(error).__name__})") from None
    return connection


async def mysql(credentials: Credentials, allowed_networks: tuple[str, ...]) -> aiomysql.Connection:
    """A MySQL/MariaDB connection as the connection's user, unbuffered cursors by default and without
    multi-statements (close it when done)."""
    address, port = await _sql_address(credentials, allowed_networks)
    what = f"connection {credentials.name!r}"
    connection = aiomysql.Connection(
        host=address,
        port=port,
        user=str(credentials.option("username")),
        password=credentials.secret,
        db=str(credentials.option("database")),
        connect_timeout=CONNECT_TIMEOUT_S,
        cursorclass=aiomysql.SSCursor,
        autocommit=False,
        charset="utf8mb4",
    )
    # aiomysql always asks for multi-statements: one query must stay one statement (`SELECT 1; COMMIT;
    # DELETE ...` would end the read-only transaction), so the flag is cleared before the handshake.
    connection.client_flag &= ~CLIENT.MULTI_STATEMENTS
    try:
        await asyncio.wait_for(connection._connect(), CONNECT_TIMEOUT_S)
    except pymysql.err.OperationalError as error:
        code = error.args[0] if error.args else None
        connection.close()
        if code in _MYSQL_REFUSING:
            raise Refused(f"{what}: {error.args[1] if len(error.args) > 1 else 'access denied'}") from None
        raise Unreachable(f"{what}: {address}:{port} could not be reached (MySQL error {code})") from None
    except (OSError, TimeoutError) as error:
        connection.close()
        raise Unreachable(f"{what}: {address}:{port} could not be reached ({type(error).__name__})") from None
    return connection


async def verify(credentials: Credentials, allowed_networks: tuple[str, ...]) -> None:
    """Connect as the connection would be used (S3: list the bucket; SQL: `SELECT 1`); Refused or
    Unreachable when that fails."""
    what = f"connection {credentials.name!r}"
    if credentials.kind == "s3":
        try:
            async with s3(credentials, allowed_networks) as client:
                await client.list_objects_v2(Bucket=str(credentials.option("bucket")), MaxKeys=1)
        except ClientError as error:
            raise s3_refusal(error, what) or Unreachable(f"{what}: the endpoint answered {error}") from None
        except BotoCoreError as error:
            raise Unreachable(f"{what}: the endpoint could not be reached ({type(error).__name__})") from None
        return
    if credentials.kind == "postgres":
        pg = await postgres(credentials, allowed_networks)
        try:
            await pg.fetchval("SELECT 1", timeout=CONNECT_TIMEOUT_S)
        finally:
            await pg.close()
        return
    my = await mysql(credentials, allowed_networks)
    try:
        async with my.cursor() as cursor:
            await cursor.execute("SELECT 1")
            await cursor.fetchall()
    finally:
        my.close()
