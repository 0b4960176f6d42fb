"""Who may do what: Forge's roles, the actions routes require, and the one table that joins them.

Policy as data, in one place: every route names one `Action` (see `forge_kit.auth.allow`), every role
is a set of actions, and docs/security.md shows this table as a matrix (generated from it by
`permission_matrix`). A role is granted to a user in a tenant (then it holds for every project of the
tenant) or in one project of it. Platform admins come from the identity provider (realm role
`platform-admin`, LDAP group `platform-admins` locally); every other role is granted in Forge.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    PLATFORM_ADMIN = "platform-admin"
    TENANT_ADMIN = "tenant-admin"
    PROJECT_ADMIN = "project-admin"
    ML_ENGINEER = "ml-engineer"
    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"
    RELEASE_APPROVER = "release-approver"
    VIEWER = "viewer"


GRANTABLE_ROLES: frozenset[Role] = frozenset(Role) - {Role.PLATFORM_ADMIN}
"""Roles a tenant admin may grant in Forge; platform admins are made in the identity provider."""


class Action(StrEnum):
    SIGNED_IN = "signed-in"
    """Any verified caller: their own profile, the tenants they belong to."""
    # platform and tenancy
    TENANT_CREATE = "tenant.create"
    TENANT_READ = "tenant.read"
    MEMBERS_MANAGE = "tenant.members.manage"
    AUDIT_READ = "audit.read"
    PLATFORM_AUDIT_READ = "audit.platform.read"
    """The platform's own trail: entries outside any tenant (tenants created, platform admins' acts)."""
    # datasets
    DATASET_READ = "dataset.read"
    DATASET_WRITE = "dataset.write"
    DATASET_SHARE = "dataset.share"
    """Grant another tenant read access to a dataset of the caller's tenant, and revoke it."""
    DATASET_CLEARANCE_MANAGE = "dataset.clearance.manage"
    """Set which secrecy level of other tenants' data a tenant is cleared to read (`forge_kit.secrecy`)."""
    # labeling
    LABELING_READ = "labeling.read"
    LABELING_MANAGE = "labeling.manage"
    LABELING_ANNOTATE = "labeling.annotate"
    LABELING_REVIEW = "labeling.review"
    # training
    TRAINING_READ = "training.read"
    TRAINING_RUN = "training.run"
    # registry
    REGISTRY_READ = "registry.read"
    REGISTRY_WRITE = "registry.write"
    REGISTRY_GATE = "registry.gate"
    REGISTRY_RELEASE = "registry.release"
    REGISTRY_APPROVE = "registry.approve"
    # scheduler
    SCHEDULER_READ = "scheduler.read"
    SCHEDULER_PROJECTS_MANAGE = "scheduler.projects.manage"
    SCHEDULER_QUOTA_MANAGE = "scheduler.quota.manage"
    # delivery
    DELIVERY_READ = "delivery.read"
    DELIVERY_ORDER = "delivery.order"
    # only Forge's own services (client-credentials identities), never a user
    DIRECTORY_READ = "directory.read"
    SCHEDULER_ALLOCATE = "scheduler.allocate"
    REGISTRY_EVALUATE = "registry.evaluate"
    REGISTRY_MARK_DELIVERED = "registry.mark-delivered"


READS: frozenset[Action] = frozenset(
    {
        Action.TENANT_READ,
        Action.DATASET_READ,
        Action.LABELING_READ,
        Action.TRAINING_READ,
        Action.REGISTRY_READ,
        Action.SCHEDULER_READ,
        Action.DELIVERY_READ,
    }
)

SERVICE_ONLY: frozenset[Action] = frozenset(
    {
        Action.DIRECTORY_READ,
        Action.SCHEDULER_ALLOCATE,
        Action.REGISTRY_EVALUATE,
        Action.REGISTRY_MARK_DELIVERED,
    }
)
"""Actions that only a Forge service may take: evaluation results come from the training service's own
evaluation jobs, allocations from the service that renders the workload, never from a user."""

_BUILDER: frozenset[Action] = READS | {
    Action.DATASET_WRITE,
    Action.TRAINING_RUN,
    Action.REGISTRY_WRITE,
    Action.REGISTRY_RELEASE,
    Action.DELIVERY_ORDER,
}

_PROJECT_ADMIN: frozenset[Action] = _BUILDER | {
    Action.LABELING_MANAGE,
    Action.REGISTRY_GATE,
    Action.DATASET_SHARE,
}

POLICY: dict[Role, frozenset[Action]] = {
    Role.PLATFORM_ADMIN: READS
    | {
        Action.TENANT_CREATE,
        Action.MEMBERS_MANAGE,
        Action.AUDIT_READ,
        Action.PLATFORM_AUDIT_READ,
        Action.SCHEDULER_PROJECTS_MANAGE,
        Action.SCHEDULER_QUOTA_MANAGE,
        Action.DATASET_CLEARANCE_MANAGE,
    },
    Role.TENANT_ADMIN: _PROJECT_ADMIN
    | {Action.MEMBERS_MANAGE, Action.AUDIT_READ, Action.SCHEDULER_PROJECTS_MANAGE},
    Role.PROJECT_ADMIN: _PROJECT_ADMIN,
    Role.ML_ENGINEER: _BUILDER,
    Role.ANNOTATOR: frozenset(
        {Action.TENANT_READ, Action.DATASET_READ, Action.LABELING_READ, Action.LABELING_ANNOTATE}
    ),
    Role.REVIEWER: frozenset(
        {Action.TENANT_READ, Action.DATASET_READ, Action.LABELING_READ, Action.LABELING_REVIEW}
    ),
    Role.RELEASE_APPROVER: frozenset(
        {
            Action.TENANT_READ,
            Action.TRAINING_READ,
            Action.REGISTRY_READ,
            Action.REGISTRY_APPROVE,
            Action.DELIVERY_READ,
            Action.DELIVERY_ORDER,
        }
    ),
    Role.VIEWER: READS,
}

SERVICE_ACTIONS: frozenset[Action] = frozenset(Action) - {
    Action.TENANT_CREATE,
    Action.PLATFORM_AUDIT_READ,
    Action.MEMBERS_MANAGE,
    Action.SCHEDULER_QUOTA_MANAGE,
    Action.REGISTRY_APPROVE,
    Action.DATASET_SHARE,
    Action.DATASET_CLEARANCE_MANAGE,
}
"""What a service identity may do in the tenant it names: the work its workflows do for users, never
granting roles or data to other tenants, setting quotas or clearances, or approving a release in
someone's name."""

assert not any(POLICY[role] & SERVICE_ONLY for role in Role), "a user role holds a service-only action"


def permits(roles: Iterable[Role], action: Action) -> bool:
    """Whether any of `roles` allows `action` (every verified caller is `signed-in`)."""
    return action is Action.SIGNED_IN or any(action in POLICY[role] for role in roles)


def permission_matrix() -> str:
    """The policy as a Markdown table (actions by roles), for docs/security.md."""
    roles = list(Role)
    head = "| action | " + " | ".join(roles) + " | services |"
    rule = "|---|" + "---|" * (len(roles) + 1)
    rows = [
        f"| `{action}` | "
        + " | ".join("✔" if permits([role], action) else "" for role in roles)
        + f" | {'✔' if action in SERVICE_ACTIONS else ''} |"
        for action in Action
    ]
    return "\n".join([head, rule, *rows])


if __name__ == "__main__":
    print(permission_matrix())
