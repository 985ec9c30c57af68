"""Package sources reach uv and pip as environment variables, references resolved at build time;
and what this interpreter satisfies (shipyard/installed.py), which decides local serving's fast
path."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from shipyard.config.package_sources import installer_environment
from shipyard.config.packages import PackageSources
from shipyard.errors import ConfigError
from shipyard.installed import unmet
from shipyard.secrets import known

TOKEN = "index-token-7c1d9e2f4a"


def test_uv_and_pip_get_their_own_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIVATE_INDEX_URL", f"https://user:{TOKEN}@pypi.example.org/simple")
    folder = tmp_path / "wheels, with a comma"
    packages = PackageSources(
        index_url="env:PRIVATE_INDEX_URL",
        extra_index_urls=["https://download.pytorch.org/whl/cpu", "https://more.example.org/simple"],
        find_links=[str(folder), "https://example.org/links.html"],
        no_index=True,
    )
    uv, redactor = installer_environment(packages, "uv")
    assert uv == {
        "UV_INDEX_URL": f"https://user:{TOKEN}@pypi.example.org/simple",
        "UV_EXTRA_INDEX_URL": "https://download.pytorch.org/whl/cpu https://more.example.org/simple",
        "UV_FIND_LINKS": f"{folder.as_uri()},https://example.org/links.html",
        "UV_NO_INDEX": "1",
    }
    assert "," not in folder.as_uri()  # a folder's comma or space cannot split the list
    pip, _ = installer_environment(packages, "pip")
    assert pip["PIP_INDEX_URL"] == uv["UV_INDEX_URL"] and pip["PIP_NO_INDEX"] == "1"
    assert pip["PIP_FIND_LINKS"] == f"{folder.as_uri()} https://example.org/links.html"
    # The resolved URL and its token are masked in the build log and in everything the CLI prints.
    assert TOKEN not in redactor.redact(f"GET {uv['UV_INDEX_URL']} and then {TOKEN}")
    assert TOKEN not in known.mask(f"token {TOKEN}")


def test_nothing_configured_sets_nothing() -> None:
    assert installer_environment(None, "uv")[0] == {}
    assert installer_environment(PackageSources(), "pip")[0] == {}


def test_a_missing_reference_names_the_field_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_INDEX_VARIABLE", raising=False)
    with pytest.raises(ConfigError, match="packages.index_url: environment variable NO_SUCH_INDEX_VARIABLE"):
        installer_environment(PackageSources(index_url="env:NO_SUCH_INDEX_VARIABLE"), "uv")


def test_what_this_interpreter_satisfies() -> None:
    numpy = metadata.version("numpy")
    assert unmet([f"numpy=={numpy}", "numpy>=1", "pydantic", 'torch; python_version < "3"']) == []
    assert unmet(["numpy<1", "shipyard-test-not-installed", "numpy @ https://example.org/numpy.whl"]) == [
        "numpy<1",
        "shipyard-test-not-installed",
        "numpy @ https://example.org/numpy.whl",
    ]
    # An extra counts with what it adds: uvicorn[standard] wants watchfiles, which is not installed here.
    assert metadata.version("uvicorn") and unmet(["uvicorn[standard]"]) == ["uvicorn[standard]"]
