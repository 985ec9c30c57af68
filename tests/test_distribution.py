"""The distribution's name and version as the installed metadata reports them."""

from __future__ import annotations

import tomllib

import shipyard
from shipyard import distribution


def test_name_and_version_are_pyprojects(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    assert project["name"] == distribution.NAME == "shipyard-mlops"
    assert distribution.version() == project["version"] == shipyard.__version__
    assert distribution.requirement() == f"shipyard-mlops=={project['version']}"


def test_requires_lists_the_runtime_dependencies_and_the_extras():
    requires = distribution.requires()
    assert any(r.startswith("mlflow") for r in requires)
    assert any('extra == "ray"' in r for r in requires)


def test_an_editable_install_has_no_wheel_file():
    # The test venv installs the checkout with `pip install -e`: direct_url.json names a folder.
    assert distribution.installed_wheel() is None
