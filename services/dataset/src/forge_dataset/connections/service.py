"""Use cases of connections: register one (verified first, its secret sealed), list, read and remove
them, and open one's credentials for an import. A connection belongs to its tenant: another tenant's
is not found, and its secret only opens with its own tenant and id (connections.crypto)."""

from __future__ import annotations

from datetime import UTC, datetime

from forge_contracts.envelope import uuid7
from forge_kit.auth import Principal
from forge_kit.errors import Conflict, NotFound, Unprocessable
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from forge_dataset.connections import clients
from forge_dataset.connections.clients import Credentials
from forge_dataset.connections.schemas import DEFAULT_PORTS, ConnectionCreate
from forge_dataset.deps import Deps
from forge_dataset.tables import SourceConnection


def _context(tenant: str, connection_id: str) -> str:
    return f"{tenant}/{connection_id}"


async def _row(session: AsyncSession, caller: Principal, connection_id: str) -> SourceConnection:
    query = select(SourceConnection).where(
        SourceConnection.id == connection_id, SourceConnection.tenant == caller.tenant_id
    )
    found = (await session.exec(query)).first()
    if found is None:
        raise NotFound(f"connection {connection_id!r} does not exist")
    return found


async def _named(session: AsyncSession, tenant: str, name: str) -> SourceConnection | None:
    query = select(SourceConnection).where(SourceConnection.tenant == tenant, SourceConnection.name == name)
    return (await session.exec(query)).first()


async def register(deps: Deps, caller: Principal, request: ConnectionCreate) -> SourceConnection:
    """A new connection in the caller's tenant, once connecting with it worked (422 saying why not;
    409 when the tenant has one of that name)."""
    options = request.model_dump(exclude={"name", "kind", "secret"}, exclude_none=True)
    if request.kind in DEFAULT_PORTS:
        options.setdefault("port", DEFAULT_PORTS[request.kind])
    elif request.kind == "s3":
        options["endpoint"] = options["endpoint"].rstrip("/")
    secret = request.secret.get_secret_value()
    created = SourceConnection(
        id=uuid7(),
        tenant=caller.tenant_id,
        name=request.name,
        kind=request.kind,
        options=options,
        sealed_secret=b"",
        created_by=caller.actor,
    )
    created.sealed_secret = deps.secrets.seal(secret, _context(created.tenant, created.id))
    async with deps.db.session() as session:
        if await _named(session, caller.tenant_id, request.name) is not None:
            raise Conflict(f"a connection named {request.name!r} exists")
    credentials = Credentials(created.id, created.name, created.kind, options, secret)
    try:
        await clients.verify(credentials, deps.import_allowed_networks)
    except clients.Unreachable as error:
        raise Unprocessable(str(error)) from None
    created.verified_at = datetime.now(UTC)
    try:
        async with deps.db.transaction() as session:
            session.add(created)
    except IntegrityError:
        raise Conflict(f"a connection named {request.name!r} exists") from None
    return created


async def connections(deps: Deps, caller: Principal) -> list[SourceConnection]:
    """The caller's tenant's connections, by name."""
    async with deps.db.session() as session:
        query = (
            select(SourceConnection)
            .where(SourceConnection.tenant == caller.tenant_id)
            .order_by(col(SourceConnection.name))
        )
        return list((await session.exec(query)).all())


async def connection(deps: Deps, caller: Principal, connection_id: str) -> SourceConnection:
    async with deps.db.session() as session:
        return await _row(session, caller, connection_id)


async def remove(deps: Deps, caller: Principal, connection_id: str) -> None:
    """Forget the connection and its secret (imports already running with it fail)."""
    async with deps.db.transaction() as session:
        await session.delete(await _row(session, caller, connection_id))


async def credentials(
    deps: Deps, caller: Principal, connection_id: str, kinds: tuple[str, ...]
) -> Credentials:
    """The connection with its secret opened, for one use; 404 when it is not the caller's tenant's,
    422 when it is not of one of `kinds`."""
    found = await connection(deps, caller, connection_id)
    if found.kind not in kinds:
        raise Unprocessable(
            f"connection {found.name!r} is a {found.kind} connection, not {' or '.join(kinds)}"
        )
    secret = deps.secrets.open(found.sealed_secret, _context(found.tenant, found.id))
    return Credentials(found.id, found.name, found.kind, dict(found.options), secret)
