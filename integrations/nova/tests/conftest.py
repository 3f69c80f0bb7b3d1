"""Shared fixtures: emulated hosts with real devmig agents (root: FUSE)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab import Host  # noqa: E402


@pytest.fixture
def hosts() -> Iterator[dict[str, Host]]:
    """A factory's registry: ``make(name, version)`` hosts, all stopped at the end."""
    made: dict[str, Host] = {}
    yield made
    for h in made.values():
        h.stop()


def pytest_configure(config: pytest.Config) -> None:
    if os.geteuid() != 0:
        raise pytest.UsageError("devmig-nova's tests mount FUSE: run them as root")
