"""Tests that need a system tool call `require_tool`: it skips with a message naming the Debian
package to install, except in CI (CI set), where a missing tool is a failure."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def missing_tool(message: str) -> NoReturn:
    """Skip the test with `message`, or fail it in CI (CI set), where every tool must be present."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_tool(command: str, package: str) -> str:
    """Path of `command`, or skip (fail in CI) naming the package that provides it."""
    path = shutil.which(command)
    if path:
        return path
    missing_tool(f"{command} not found: install the Debian package {package!r} (make test does so as root)")
