"""Request and response models of the sharing routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from forge_contracts.events.base import Id, TenantId
from forge_contracts.events.dataset import GrantAccess
from forge_kit.types import NonBlankText
from pydantic import BaseModel, ConfigDict, Field

from forge_dataset.schemas import DatasetView

Clearance = Literal["public", "internal", "confidential"]


class GrantCreate(BaseModel):
    """`POST /datasets/{id}/grants`: share the dataset (or one of its published versions) with a tenant."""

    model_config = ConfigDict(extra="forbid")

    grantee_tenant: TenantId = Field(description="Another tenant (datasets are tenant-wide: no projects).")
    version_id: Id | None = Field(default=None, description="One published version; none: every version.")
    access: GrantAccess = Field(
        default="read", description="`read`, or `read+derive`: the grantee's versions may name it parent."
    )


class GrantRevoke(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: NonBlankText | None = Field(default=None, max_length=4000, description="Why (audited).")


class GrantView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    dataset_id: str
    tenant: str = Field(description="The owner tenant.")
    grantee_tenant: str
    version_id: str | None
    access: str
    granted_by: str | None
    granted_at: datetime
    revoked_by: str | None
    revoked_at: datetime | None


class SharedDatasetView(DatasetView):
    """A dataset another tenant shared with the caller's, with the grants that share it."""

    owner_tenant: str
    grants: list[GrantView]


class ClearanceSet(BaseModel):
    """`PUT /clearances/{tenant_id}`: the highest secrecy level of other tenants' data it may be granted."""

    model_config = ConfigDict(extra="forbid")

    level: Clearance = Field(
        description="`secret` data never leaves its tenant, so no tenant is cleared for it."
    )
    reason: NonBlankText | None = Field(default=None, max_length=4000, description="Why (audited).")


class ClearanceView(BaseModel):
    tenant: str
    level: Clearance
    default: bool = Field(description="Whether this is the default clearance (nobody set one).")
    set_by: str | None = None
    set_at: datetime | None = None
