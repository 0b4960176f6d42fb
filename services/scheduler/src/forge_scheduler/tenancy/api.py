"""The directory's HTTP API: tenants, members and roles, the caller's profile, and the lookups Forge's
services make to resolve their callers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response, status
from forge_kit.auth import Principal, allow
from forge_kit.errors import NotFound
from forge_kit.policy import Action, Role, permits
from forge_kit.runtime import Runtime
from forge_kit.types import Username

from forge_scheduler.tenancy import service
from forge_scheduler.tenancy.schemas import (
    DirectoryEntry,
    MemberRoles,
    MembershipView,
    MemberView,
    ProfileView,
    TenantCreate,
    TenantRolesView,
    TenantView,
)

router = APIRouter()


def _view(found: object) -> TenantView:
    return TenantView.model_validate(found, from_attributes=True)


@router.get("/me", tags=["tenancy"])
async def me(caller: Annotated[Principal, allow(Action.SIGNED_IN, tenant=False)]) -> ProfileView:
    """Who the token says you are, and your roles in each of your tenants."""
    tenants: dict[str, TenantRolesView] = {}
    for m in caller.memberships:
        view = tenants.setdefault(
            m.tenant_id, TenantRolesView(tenant_id=m.tenant_id, roles=[], project_roles={})
        )
        if m.project_id is None:
            view.roles.append(m.role)
        else:
            view.project_roles.setdefault(m.project_id, []).append(m.role)
    # A platform admin acts in any tenant with the platform-admin role besides their own (forge_kit.auth).
    platform = [Role.PLATFORM_ADMIN] if caller.platform_admin else []
    for view in tenants.values():
        view.actions = [action for action in Action if permits([*view.roles, *platform], action)]
        view.project_actions = {
            project: [a for a in Action if permits([*view.roles, *roles, *platform], a)]
            for project, roles in view.project_roles.items()
        }
    return ProfileView(
        platform_actions=[action for action in Action if platform and permits(platform, action)],
        username=caller.username,
        kind=caller.kind,
        platform_admin=caller.platform_admin,
        tenant=caller.tenant,
        tenants=list(tenants.values()),
    )


@router.post("/tenants", status_code=status.HTTP_201_CREATED, tags=["tenancy"])
async def create_tenant(
    body: TenantCreate, caller: Annotated[Principal, allow(Action.TENANT_CREATE, tenant=False)], svc: Runtime
) -> TenantView:
    """Create a tenant (platform admins), optionally naming its first tenant admins."""
    return _view(await service.create_tenant(svc.db, caller, body))


@router.get("/tenants", tags=["tenancy"])
async def list_tenants(
    caller: Annotated[Principal, allow(Action.SIGNED_IN, tenant=False)], svc: Runtime
) -> list[TenantView]:
    """Your tenants (every tenant, for a platform admin)."""
    return [_view(t) for t in await service.tenants(svc.db, caller)]


@router.get("/tenants/{tenant_id}", tags=["tenancy"])
async def get_tenant(
    tenant_id: str, caller: Annotated[Principal, allow(Action.TENANT_READ)], svc: Runtime
) -> TenantView:
    return _view(await service.tenant(svc.db, caller))


@router.get("/tenants/{tenant_id}/members", tags=["tenancy"])
async def list_members(
    tenant_id: str, caller: Annotated[Principal, allow(Action.TENANT_READ)], svc: Runtime
) -> list[MemberView]:
    return await service.members(svc.db, caller)


@router.put("/tenants/{tenant_id}/members/{username}", tags=["tenancy"])
async def set_member(
    tenant_id: str,
    username: Username,
    body: MemberRoles,
    caller: Annotated[Principal, allow(Action.MEMBERS_MANAGE)],
    svc: Runtime,
) -> MemberView:
    """Replace the user's roles in the tenant (tenant admins). A user's token names them by username."""
    return await service.set_member(svc.db, caller, username, body)


@router.delete(
    "/tenants/{tenant_id}/members/{username}", status_code=status.HTTP_204_NO_CONTENT, tags=["tenancy"]
)
async def remove_member(
    tenant_id: str,
    username: Username,
    caller: Annotated[Principal, allow(Action.MEMBERS_MANAGE)],
    svc: Runtime,
) -> Response:
    await service.remove_member(svc.db, caller, username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/directory/users/{username}", tags=["directory"])
async def directory_user(
    username: Username, _: Annotated[Principal, allow(Action.DIRECTORY_READ, tenant=False)], svc: Runtime
) -> DirectoryEntry:
    """A user's memberships, for Forge's services (service identities only)."""
    found = await service.LocalDirectory(svc.db).memberships(username)
    return DirectoryEntry(
        username=username,
        memberships=[
            MembershipView(tenant_id=m.tenant_id, role=m.role, project_id=m.project_id) for m in found
        ],
    )


@router.get("/directory/tenants/{tenant_id}", tags=["directory"])
async def directory_tenant(
    tenant_id: str, _: Annotated[Principal, allow(Action.DIRECTORY_READ, tenant=False)], svc: Runtime
) -> dict[str, str]:
    """Whether a tenant exists, for Forge's services (service identities only)."""
    if not await service.LocalDirectory(svc.db).tenant_exists(tenant_id):
        raise NotFound(f"tenant '{tenant_id}' does not exist")
    return {"id": tenant_id}
