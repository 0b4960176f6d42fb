"""Secrecy levels of data and who may read data of a level outside its tenant: the one place for that rule.

A dataset is classified `public` < `internal` < `confidential` < `secret` (DS-6). Inside its own tenant the
tenant's roles decide (`forge_kit.policy`); across tenants this module does:

- `secret` data never leaves its tenant: no tenant may be granted it, whatever its clearance.
- Every other tenant is cleared up to `internal` (`DEFAULT_CLEARANCE`) unless a platform admin raised its
  clearance; the highest clearance there is is `confidential` (`MAX_CLEARANCE`).
- Data above the reading tenant's clearance cannot be shared with it, and is not readable by it: services
  call `sharing_refusal` both when a grant is made and on every read through a grant, so lowering a
  clearance stops reads at once.
"""

from __future__ import annotations

from enum import StrEnum


class Secrecy(StrEnum):
    """A classification level, lowest first."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    SECRET = "secret"  # noqa: S105 (a classification level, not a password)

    @property
    def rank(self) -> int:
        """0 for `public` up to 3 for `secret`."""
        return list(Secrecy).index(self)


DEFAULT_CLEARANCE = Secrecy.INTERNAL
"""What a tenant is cleared for when no platform admin set its clearance."""

MAX_CLEARANCE = Secrecy.CONFIDENTIAL
"""The highest clearance a tenant can be given: `secret` data never leaves its tenant."""


def clearance_refusal(level: str) -> str | None:
    """Why `level` cannot be a tenant's clearance, or None when it can."""
    try:
        wanted = Secrecy(level)
    except ValueError:
        return f"{level!r} is not a secrecy level ({', '.join(Secrecy)})"
    if wanted.rank > MAX_CLEARANCE.rank:
        return f"no tenant can be cleared for {wanted}: {wanted} data never leaves its tenant"
    return None


def sharing_refusal(
    secrecy: str, *, owner_tenant: str, reader_tenant: str, clearance: str | None = None
) -> str | None:
    """Why data classified `secrecy`, owned by `owner_tenant`, may not be read by `reader_tenant` (whose
    clearance is `clearance`, `DEFAULT_CLEARANCE` when None), or None when it may. The owner's own tenant
    is never refused here: its roles decide."""
    if reader_tenant == owner_tenant:
        return None
    level = Secrecy(secrecy)
    if level is Secrecy.SECRET:
        return f"{level} data never leaves its tenant ({owner_tenant})"
    cleared = Secrecy(clearance) if clearance is not None else DEFAULT_CLEARANCE
    if level.rank > cleared.rank:
        return (
            f"tenant {reader_tenant} is cleared up to {cleared} data; this dataset is {level} "
            "(a platform admin can raise the tenant's clearance)"
        )
    return None
