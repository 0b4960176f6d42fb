"""Forge delivery service."""
