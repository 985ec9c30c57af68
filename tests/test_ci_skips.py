"""The CI rule of tests/ci_skips.py: with `CI` set every kind of skip (and xfail) is a failure
naming the test and the reason; without it they stay skips."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SKIPPING = """
import pytest

def test_skip_call():
    pytest.skip("no frobnicator here")

@pytest.mark.skipif(True, reason="not on this platform")
def test_skipif_mark():
    pass

@pytest.fixture
def tool():
    pytest.skip("tool missing: install the Debian package 'frob'")

def test_skip_in_fixture(tool):
    pass

@pytest.mark.xfail(reason="known bug 42")
def test_xfail():
    assert False

def test_runs():
    pass
"""
MISSING_MODULE = """
import pytest

pytest.importorskip("shipyard_no_such_module_7c1e")

def test_never_collected():
    pass
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """run(ci): pytest (with the plugin) on the two files above, CI set to `ci` (None: unset)."""
    pytester.makepyfile(test_skipping=SKIPPING, test_missing_module=MISSING_MODULE)

    def run(ci: str | None) -> pytest.RunResult:
        if ci is None:
            monkeypatch.delenv("CI", raising=False)
        else:
            monkeypatch.setenv("CI", ci)
        return pytester.runpytest(
            "-p", "ci_skips", "-p", "no:cacheprovider", "--continue-on-collection-errors"
        )

    return run


@pytest.mark.parametrize("ci", [None, "0", "False"])
def test_without_ci_skips_stay_skips(run, ci: str | None) -> None:
    result = run(ci)
    result.assert_outcomes(passed=1, skipped=4, xfailed=1)


@pytest.mark.parametrize("ci", ["true", "1"])
def test_in_ci_every_skip_fails_naming_the_test_and_the_reason(run, ci: str) -> None:
    result = run(ci)
    # A skipif mark or a skip in a fixture fails at setup (an error), a module-level skip at
    # collection (an error that would stop the session without --continue-on-collection-errors).
    result.assert_outcomes(passed=1, failed=2, errors=3)
    out = result.stdout.str()
    for nodeid, reason in (
        ("test_skipping.py::test_skip_call", "no frobnicator here"),
        ("test_skipping.py::test_skipif_mark", "not on this platform"),
        ("test_skipping.py::test_skip_in_fixture", "tool missing: install the Debian package 'frob'"),
        ("test_skipping.py::test_xfail", "xfail (known bug 42)"),
        ("test_missing_module.py", "could not import 'shipyard_no_such_module_7c1e'"),
    ):
        assert f"{nodeid} did not run in CI, where every test must: " in out, out
        assert reason in out, out
    assert result.ret != 0
