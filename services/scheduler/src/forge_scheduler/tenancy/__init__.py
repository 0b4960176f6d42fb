"""Tenancy: tenants, their members and roles (the directory every service resolves its callers from)."""
