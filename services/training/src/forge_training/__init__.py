"""Forge training service."""
