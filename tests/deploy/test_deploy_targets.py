"""The deployment target table: one class per target type, its differences as attributes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from shipyard.config.models import DeploymentConfig
from shipyard.config.targets import TargetConfig
from shipyard.deploy.targets import (
    TARGETS,
    DeploymentSpec,
    TargetHandle,
    get_target,
    handle_of,
    target_class,
    target_names,
)
from shipyard.deploy.targets import local as local_target
from shipyard.errors import ConfigError, DeploymentError


def test_every_configurable_target_type_has_a_class_that_says_what_it_is() -> None:
    allowed = TargetConfig.model_fields["target"].annotation.__args__  # the Literal's values
    assert set(allowed) <= set(TARGETS)
    for name in TARGETS:
        cls = target_class(name)
        assert cls.name == name
        assert isinstance(cls.builds_image, bool) and isinstance(cls.runs_in_cluster, bool)
        assert isinstance(cls.on_this_machine, bool)
        for method in ("apply", "status", "logs", "delete"):
            assert callable(getattr(cls, method))
    assert target_class(None).name == "local"  # records from before targets were recorded
    assert [n for n in TARGETS if target_class(n).runs_in_cluster] == ["kubernetes"]
    assert [n for n in TARGETS if target_class(n).builds_image] == ["container", "remote-container"]
    # What dies with the machine that deployed it (a CI job's hosted runner: ci generate refuses).
    assert [n for n in TARGETS if target_class(n).on_this_machine] == ["local", "container"]


def test_an_unknown_target_names_the_table() -> None:
    assert target_names() == "local, container, remote-container or kubernetes"
    with pytest.raises(
        ConfigError,
        match="'nope' has no implementation here: use local, container, remote-container or kubernetes",
    ):
        target_class("nope")


def test_a_cluster_target_refuses_to_be_started_here() -> None:
    spec = DeploymentSpec("d1", "dev", DeploymentConfig(name="dev", target="kubernetes"))
    with pytest.raises(ConfigError, match="is not run by `deploy`: use `shipyard deploy --target kubernetes"):
        get_target("kubernetes").apply(spec)


def test_a_record_becomes_its_targets_handle() -> None:
    record = SimpleNamespace(
        id="d1", target=None, url=None, port=None, pid=42, container_id=None, log_path="/tmp/d1.log"
    )
    handle = handle_of(record)
    assert (handle.target, handle.url, handle.port, handle.pid) == ("local", "", 0, 42)
    assert (handle.deployment_id, handle.log_path, handle.process_start) == ("d1", Path("/tmp/d1.log"), None)


def test_a_local_server_without_a_recorded_pid_is_found_by_its_deployment_id(monkeypatch) -> None:
    stopped: list[int] = []
    monkeypatch.setattr(local_target, "find_servers", lambda dep_id: [7, 8] if dep_id == "d1" else [])
    monkeypatch.setattr(local_target, "stop_server", stopped.append)
    target = get_target("local")
    target.delete(handle_of(SimpleNamespace(id="d1", url=None, port=None, pid=None)))
    assert stopped == [7, 8]
    target.delete(handle_of(SimpleNamespace(id="d2", url=None, port=None, pid=3)))
    assert stopped == [7, 8, 3]


def test_a_remote_container_record_without_its_connection_is_not_called_deleted() -> None:
    target = get_target("remote-container")
    target.delete(TargetHandle("remote-container", "", 0))  # failed before a container existed
    with pytest.raises(
        DeploymentError, match="cannot delete remote container 0123456789ab: its record has no"
    ):
        target.delete(TargetHandle("remote-container", "http://h:1", 1, container_id="0123456789abcdef"))
    assert target.status(TargetHandle("remote-container", "", 0)) == "missing"
