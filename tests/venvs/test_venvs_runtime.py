"""What goes into a venv besides the spec (Shipyard's pinned dependencies), and installer choice."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from shipyard.errors import UsageError
from shipyard.venvs.cache import choose_installer, runtime_requirements
from shipyard.venvs.spec import read_env_spec


def test_runtime_pins_shipyard_dependencies_to_the_host_versions() -> None:
    lines = runtime_requirements(read_env_spec(None))
    assert lines == sorted(lines)
    assert f"mlflow=={metadata.version('mlflow')}" in lines
    assert f"scikit-learn=={metadata.version('scikit-learn')}" in lines
    names = {line.split("==")[0] for line in lines}
    assert "pytest" not in names and "hypothesis" not in names  # the dev extra stays out


def test_a_package_the_spec_names_is_left_to_the_spec(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("Scikit_Learn>=1.4\n")
    names = {line.split("==")[0] for line in runtime_requirements(read_env_spec(req))}
    assert "scikit-learn" not in names and "mlflow" in names


def test_installer_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="expected one of uv, pip"):
        choose_installer("conda")
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no uv
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))  # and none beside Python
    assert choose_installer(None) == "pip"
    with pytest.raises(UsageError, match="uv is not on PATH"):
        choose_installer("uv")
    uv = tmp_path / "uv"
    uv.write_text("#!/bin/sh\n")
    uv.chmod(0o755)
    assert choose_installer(None) == "uv"
