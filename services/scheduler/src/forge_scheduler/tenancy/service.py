"""Use cases of the directory: tenants are created by platform admins; tenant admins grant roles."""

from __future__ import annotations

from collections.abc import Sequence

from forge_contracts.envelope import uuid7
from forge_contracts.events.audit import PLATFORM_TENANT
from forge_kit.auth import Membership as Grant
from forge_kit.auth import Principal
from forge_kit.db import Database
from forge_kit.errors import BadRequest, Conflict, NotFound
from forge_kit.policy import GRANTABLE_ROLES, Role
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from forge_scheduler.domain import Clock, utc_now
from forge_scheduler.tables import Membership, Project, Tenant
from forge_scheduler.tenancy.schemas import MemberRoles, MemberView, TenantCreate


class LocalDirectory:
    """The directory read straight from the scheduler's own tables (the scheduler's Authenticator)."""

    def __init__(self, db: Database | None = None) -> None:
        self.db = db  # set by the runtime once it has its pool

    def _db(self) -> Database:
        if self.db is None:
            raise RuntimeError("the local directory has no database yet")
        return self.db

    async def memberships(self, username: str) -> Sequence[Grant]:
        async with self._db().session() as session:
            rows = (await session.exec(select(Membership).where(Membership.username == username))).all()
        return [Grant(row.tenant_id, Role(row.role), row.project_id) for row in rows]

    async def tenant_exists(self, tenant_id: str) -> bool:
        async with self._db().session() as session:
            return await session.get(Tenant, tenant_id) is not None


async def create_tenant(
    db: Database, caller: Principal, body: TenantCreate, clock: Clock = utc_now
) -> Tenant:
    if body.id == PLATFORM_TENANT:
        raise BadRequest(f"'{PLATFORM_TENANT}' is reserved for the audit trail of the platform itself")
    now = clock()
    tenant = Tenant(id=body.id, display_name=body.display_name, created_by=caller.actor, created_at=now)
    try:
        async with db.transaction() as session:
            if await session.get(Tenant, body.id) is not None:
                raise Conflict(f"tenant '{body.id}' already exists")
            session.add(tenant)
            await session.flush()
            for username in dict.fromkeys(body.admins):
                session.add(_grant(body.id, username, Role.TENANT_ADMIN, None, caller, now))
    except IntegrityError:  # a concurrent create of the same id won
        raise Conflict(f"tenant '{body.id}' already exists") from None
    return tenant


def _grant(
    tenant_id: str, username: str, role: Role, project_id: str | None, caller: Principal, now: object
) -> Membership:
    return Membership(
        id=uuid7(),
        tenant_id=tenant_id,
        username=username,
        project_id=project_id,
        role=role.value,
        granted_by=caller.actor,
        granted_at=now,
    )


async def tenants(db: Database, caller: Principal) -> list[Tenant]:
    """Every tenant for a platform admin; the caller's own otherwise."""
    async with db.session() as session:
        query = select(Tenant).order_by(col(Tenant.id))
        if not caller.platform_admin:
            query = query.where(col(Tenant.id).in_(caller.tenants))
        return list((await session.exec(query)).all())


async def tenant(db: Database, caller: Principal) -> Tenant:
    async with db.session() as session:
        found = await session.get(Tenant, caller.tenant_id)
    if found is None:
        raise NotFound(f"tenant '{caller.tenant_id}' does not exist")
    return found


async def members(db: Database, caller: Principal) -> list[MemberView]:
    async with db.session() as session:
        query = select(Membership).where(Membership.tenant_id == caller.tenant_id)
        rows = (await session.exec(query.order_by(col(Membership.username)))).all()
    grouped: dict[str, MemberView] = {}
    for row in rows:
        view = grouped.setdefault(row.username, MemberView(username=row.username))
        if row.project_id is None:
            view.roles.append(Role(row.role))
        else:
            view.project_roles.setdefault(row.project_id, []).append(Role(row.role))
    return list(grouped.values())


async def set_member(
    db: Database, caller: Principal, username: str, body: MemberRoles, clock: Clock = utc_now
) -> MemberView:
    """Replace what `username` may do in the caller's tenant; granting only roles Forge grants."""
    wanted = {*body.roles, *(role for roles in body.project_roles.values() for role in roles)}
    if not wanted <= GRANTABLE_ROLES:
        raise BadRequest("platform-admin is granted in the identity provider, not in a tenant")
    if not wanted:
        raise BadRequest("give at least one role; to remove the member, DELETE it")
    now = clock()
    async with db.transaction() as session:
        tenant_id = caller.tenant_id
        if await session.get(Tenant, tenant_id, with_for_update=True) is None:
            raise NotFound(f"tenant '{tenant_id}' does not exist")
        for project_id in body.project_roles:
            found = await session.get(Project, project_id)
            if found is None or found.tenant_id != tenant_id:
                raise NotFound(f"project {project_id!r} does not exist")
        await session.exec(  # type: ignore[call-overload]
            delete(Membership).where(
                col(Membership.tenant_id) == tenant_id, col(Membership.username) == username
            )
        )
        for role in dict.fromkeys(body.roles):
            session.add(_grant(tenant_id, username, role, None, caller, now))
        for project_id, roles in body.project_roles.items():
            for role in dict.fromkeys(roles):
                session.add(_grant(tenant_id, username, role, project_id, caller, now))
    return MemberView(
        username=username,
        roles=list(dict.fromkeys(body.roles)),
        project_roles={p: list(dict.fromkeys(r)) for p, r in body.project_roles.items()},
    )


async def remove_member(db: Database, caller: Principal, username: str) -> None:
    async with db.transaction() as session:
        result = await session.exec(  # type: ignore[call-overload]
            delete(Membership).where(
                col(Membership.tenant_id) == caller.tenant_id, col(Membership.username) == username
            )
        )
        if result.rowcount == 0:
            raise NotFound(f"{username!r} is not a member of tenant '{caller.tenant_id}'")
