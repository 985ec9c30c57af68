"""Tests that need a system tool call `require_tool`: it skips with a message naming the Debian
package to install (in CI, where every tool is installed, tests/ci_skips.py fails that skip)."""

from __future__ import annotations

import shutil

import pytest


def require_tool(command: str, package: str) -> str:
    """Path of `command`, or skip naming the package that provides it."""
    path = shutil.which(command)
    if path:
        return path
    pytest.skip(f"{command} not found: install the Debian package {package!r} (make test does so as root)")
