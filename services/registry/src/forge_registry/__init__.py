"""Forge registry service."""
