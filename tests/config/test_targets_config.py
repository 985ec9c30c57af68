"""The remote-container target's `remote:` section: what loads, and each bad value named in one
message (host, port, user, key as a reference, runtime), per environment too."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.config.loader import load_project
from shipyard.config.overlay import env_deployment
from shipyard.errors import ConfigError

MINIMAL = "name: demo\nregistry:\n  model_name: demo-model\n"
REMOTE = """deployment:
  target: remote-container
  remote:
    host: vm1.example.internal
    user: deploy
    port: 2222
    key: env:DEPLOY_SSH_KEY
    known_hosts: .ssh/known_hosts
    runtime: docker
"""


def _load(tmp_path: Path, text: str):
    path = tmp_path / "shipyard.yaml"
    path.write_text(MINIMAL + text)
    return load_project(path)


def test_a_remote_section_loads_with_its_defaults(tmp_path):
    d = _load(tmp_path, REMOTE).deployment
    assert d is not None and d.target == "remote-container" and d.remote is not None
    assert (d.remote.host, d.remote.port, d.remote.user, d.remote.runtime) == (
        "vm1.example.internal",
        2222,
        "deploy",
        "docker",
    )
    assert (
        str(d.remote.key) == "env:DEPLOY_SSH_KEY" and d.remote.bind == "0.0.0.0" and d.remote.address is None
    )


def test_each_environment_picks_its_target(tmp_path):
    config = _load(
        tmp_path,
        "environments:\n  dev: {}\n  prod:\n    promotes_from: dev\n    deployment:\n"
        "      target: remote-container\n      remote: {host: 10.0.0.5}\n",
    )
    assert env_deployment(config, "dev").target == "local"
    prod = env_deployment(config, "prod")
    assert prod.target == "remote-container" and prod.remote is not None and prod.remote.host == "10.0.0.5"
    assert prod.remote.port == 22 and prod.remote.runtime == "podman"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("deployment:\n  target: remote-container\n", "needs a `remote:` section with at least `host:`"),
        (REMOTE.replace("port: 2222", "port: 70000"), "deployment.remote.port"),
        (REMOTE.replace("vm1.example.internal", "'-oProxyCommand=x'"), "is not a host name"),
        (REMOTE.replace("user: deploy", "user: 'a b'"), "is not a user name"),
        (
            REMOTE.replace("env:DEPLOY_SSH_KEY", "'-----BEGIN OPENSSH PRIVATE KEY-----'"),
            "deployment.remote.key",
        ),
        (REMOTE.replace("runtime: docker", "runtime: lxc"), "'podman' or 'docker'"),
    ],
)
def test_bad_remote_settings_are_named(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert fragment in str(err.value), str(err.value)
