"""Shared by every test folder: where the repository, the example project and the CLI are.

Tests mirror src/shipyard: tests/<package>/ holds the tests of that package, unit and integration
side by side (integration tests carry `pytestmark = pytest.mark.integration`: `-m "not
integration"` runs the fast ones). Helpers shared across folders are modules at this level
(`*_support.py`, `bundles.py`, `tools.py`); project_fixtures.py holds the fixtures of the
end-to-end tests (project copies, the CLI, the database, endpoint clean-up)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Every skip fails in CI (tests/ci_skips.py); the end-to-end fixtures (tests/project_fixtures.py).
pytest_plugins = ["ci_skips", "project_fixtures"]

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_DIR = REPO_ROOT / "examples" / "diabetes"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def example_dir() -> Path:
    """The seed sample (never written to: tests work on copies)."""
    return EXAMPLE_DIR


@pytest.fixture(scope="session")
def shipyard_bin() -> Path:
    """The `shipyard` console script of the interpreter running the tests (the project venv)."""
    exe = Path(sys.executable).with_name("shipyard")
    if not exe.is_file():
        pytest.skip(f"no shipyard console script next to {sys.executable}; install the package")
    return exe


@pytest.fixture(autouse=True)
def _forget_known_secrets():
    """Secret values one test resolved are masked in the output of every later test of the same
    process (secrets/known.py keeps them for the process's life): forget them after each test."""
    yield
    from shipyard.secrets import known

    known._values.clear()
    known._redactor = None
