"""Forge labeling service."""
