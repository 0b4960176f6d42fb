"""Request and response models of the directory's HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from forge_kit.policy import Action, Role
from forge_kit.types import Username
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from forge_scheduler.schemas import DnsLabel


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantCreate(_Body):
    id: DnsLabel = Field(description="The tenant's id, a DNS label; unique on the platform.")
    display_name: str | None = Field(default=None, max_length=200)
    admins: list[Username] = Field(
        default_factory=list, max_length=50, description="Users made tenant-admin of the new tenant."
    )


class TenantView(BaseModel):
    id: str
    display_name: str | None
    created_by: str | None
    created_at: datetime


class MemberRoles(_Body):
    """Everything a user may do in one tenant: roles on the whole tenant and in single projects."""

    roles: list[Role] = Field(default_factory=list, max_length=16)
    project_roles: dict[Annotated[str, StringConstraints(max_length=64)], list[Role]] = Field(
        default_factory=dict, max_length=200, description="project id -> roles in that project only"
    )


class MemberView(MemberRoles):
    username: str


class MembershipView(BaseModel):
    tenant_id: str
    role: Role
    project_id: str | None = None


class DirectoryEntry(BaseModel):
    """What the directory knows of one user (read by Forge's services to resolve their callers)."""

    username: str
    memberships: list[MembershipView]


class TenantRolesView(BaseModel):
    tenant_id: str
    roles: list[Role]
    project_roles: dict[str, list[Role]]
    actions: list[Action] = Field(
        default_factory=list,
        description="What the tenant-wide roles permit (forge_kit.policy), so a client (the console) shows "
        "only what the caller may do without keeping its own copy of the policy.",
    )
    project_actions: dict[str, list[Action]] = Field(
        default_factory=dict,
        description="Per project with roles of its own: what the tenant-wide and the project's roles permit "
        "together, for a resource of that project.",
    )


class ProfileView(BaseModel):
    """The signed-in caller as Forge sees them."""

    username: str
    kind: str
    platform_admin: bool
    tenant: str | None = Field(
        description="The tenant this request acted in (x-forge-tenant, or the only one)."
    )
    tenants: list[TenantRolesView]
    platform_actions: list[Action] = Field(
        default_factory=list,
        description="A platform admin's actions in any tenant, a member of it or not (empty for others).",
    )
