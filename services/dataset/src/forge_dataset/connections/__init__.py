"""Connections (DS-1): the object stores and SQL databases a tenant's users register, with their secrets
encrypted, for imports to read from."""
