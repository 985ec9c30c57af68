"""In CI nothing may skip: the root conftest loads this plugin, which turns every skipped test,
module and xfail into a failure when the `CI` variable is set (not empty, "0" or "false").

Skips name what a developer's machine lacks (a Debian package, a Python extra, root); the CI
machine has all of it (scripts/install-test-deps.sh, .[dev] from constraints.txt), so a skip
there is a test that silently stopped running. An xfail is the same in CI: a known failure is
fixed or removed before it merges, not carried.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest


def in_ci() -> bool:
    """The `CI` variable is set to something other than "", "0" or "false"."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    if getattr(report, "wasxfail", None) is not None:
        return f"xfail ({report.wasxfail or 'no reason given'})"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # (path, line, "Skipped: reason")
        return f"{longrepr[2]} ({longrepr[0]}:{longrepr[1]})"
    return str(longrepr)


def _fail_if_skipped(report: pytest.CollectReport | pytest.TestReport) -> None:
    if report.skipped and in_ci():
        reason = _skip_reason(report)
        report.outcome = "failed"
        report.longrepr = f"{report.nodeid} did not run in CI, where every test must: {reason}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _fail_if_skipped(report)
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield  # a module-level skip (importorskip at import, allow_module_level)
    _fail_if_skipped(report)
    return report
