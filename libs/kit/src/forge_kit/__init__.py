"""Forge service kit: the plumbing every Forge service is built from."""
