"""`ci.runner`: a release to an environment served from the CI job's own machine (local or
container target) is refused on a hosted runner, naming the environment; a self-hosted runner's
label reaches every job of every provider (GitHub runs-on, Azure pool, GitLab tags), and the files
still pass the official schemas."""

from __future__ import annotations

import subprocess
import sys

import pytest
from ci_support import PROVIDERS, actionlint, check_schema, files_of, project_at, yaml_of

from shipyard.ci.generate import generate
from shipyard.config.loader import load_project
from shipyard.errors import ConfigError, UsageError

LOCAL_DEV = """
environments:
  dev: {ttl: 24h}
  qa: {promotes_from: dev, deployment: {target: kubernetes}}
"""
CONTAINER_QA = """
environments:
  dev: {deployment: {target: kubernetes}}
  qa: {promotes_from: dev, deployment: {target: container}}
"""


def _project(tmp_path, extra: str):
    return load_project(project_at(tmp_path / "repo", extra))


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("extra", "env", "target"), [(LOCAL_DEV, "dev", "local"), (CONTAINER_QA, "qa", "container")]
)
def test_a_hosted_runner_refuses_an_environment_on_the_jobs_machine(tmp_path, provider, extra, env, target):
    config = _project(tmp_path, extra)
    out = config.project_dir.parent
    with pytest.raises(UsageError) as err:
        generate(config, provider, out)
    message = str(err.value)
    assert message.startswith(f"environment '{env}' deploys to the '{target}' target")
    assert f"environments.{env}.deployment.target" in message and "ci.runner" in message
    assert "\n" not in message
    assert sorted(p.name for p in out.iterdir()) == ["diabetes"]  # nothing written


def test_the_cli_says_it_in_one_line(tmp_path):
    config = _project(tmp_path, LOCAL_DEV)
    cmd = [sys.executable, "-m", "shipyard.cli.main", "ci", "generate", "-p", str(config.project_dir)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "environment 'dev' deploys to the 'local' target" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def _runners(config, provider: str) -> list:
    """The runner each job of each generated file asks for."""
    found = []
    for data in yaml_of(config, provider).values():
        if provider == "github":
            found += [job["runs-on"] for job in data["jobs"].values()]
        elif provider == "azure":
            found.append(data["pool"])
        else:
            found.append(data["default"].get("tags"))
    return found


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_self_hosted_runner_takes_the_release_and_every_other_job(tmp_path, provider):
    config = _project(tmp_path, LOCAL_DEV + "ci:\n  runner: gpu-box-1\n")
    files = files_of(config, provider)
    expected = {"github": "gpu-box-1", "azure": {"name": "gpu-box-1"}, "gitlab": ["gpu-box-1"]}[provider]
    runners = _runners(config, provider)
    assert runners and all(r == expected for r in runners)
    assert "vmImage" not in "".join(files.values()) and "ubuntu-latest" not in "".join(files.values())
    if provider != "gitlab":
        assert any("release" in rel for rel in files)
    result = check_schema(provider, [config.project_dir.parent / rel for rel in files])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_plain_self_hosted_label_passes_actionlint(tmp_path):
    config = _project(tmp_path, LOCAL_DEV + "ci:\n  runner: self-hosted\n")
    out = config.project_dir.parent
    paths = [str(out / rel) for rel in files_of(config, "github")]
    result = subprocess.run(
        [actionlint(), "-no-color", *paths], capture_output=True, text=True, timeout=60, cwd=out
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(r == "self-hosted" for r in _runners(config, "github"))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_hosted_is_the_default(staged_hosted, provider):
    expected = {"github": "ubuntu-latest", "azure": {"vmImage": "ubuntu-latest"}, "gitlab": None}[provider]
    runners = _runners(staged_hosted, provider)
    assert runners and all(r == expected for r in runners)


@pytest.fixture
def staged_hosted(tmp_path):
    return _project(tmp_path, "environments:\n  dev: {deployment: {target: kubernetes}}\n")


@pytest.mark.parametrize("label", ["my runner", "-x", "a:b", ""])
def test_a_bad_runner_label_is_a_config_error(tmp_path, label):
    with pytest.raises(ConfigError, match="ci.runner|runner"):
        _project(tmp_path, f"ci:\n  runner: {label!r}\n")
