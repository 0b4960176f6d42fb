"""Every service test calls its service as real signed-in users, resolved through the test directory."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _signed_in(directory: str) -> str:
    return directory
