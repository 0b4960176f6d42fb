"""Forge dataset service."""
