"""The compute: section, name resolution, and the cluster files `compute create --render` writes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from shipyard.compute import get_target
from shipyard.compute.ray.cluster_config import kuberay_manifest, launcher_config, render, validate_launcher
from shipyard.config.models import ProjectConfig
from shipyard.errors import ConfigError, UsageError


def project(**extra: object) -> ProjectConfig:
    return ProjectConfig.model_validate({"name": "p", "registry": {"model_name": "m"}, **extra})


def test_named_targets_of_each_type_are_parsed_with_their_defaults() -> None:
    cfg = project(
        compute={
            "vm": {"type": "ssh", "host": "10.0.0.5", "key": "env:VM_KEY"},
            "cl": {"type": "ray", "num_cpus": 2},
            "sp": {"type": "spark"},
        },
        train={"compute": "cl"},
    )
    assert cfg.compute["vm"].port == 22 and cfg.compute["vm"].key == "env:VM_KEY"
    assert cfg.compute["cl"].idle_minutes == 60 and cfg.compute["cl"].address is None
    assert cfg.compute["sp"].master == "local[*]"
    assert type(get_target("vm", None, cfg)).__name__ == "SshTarget"
    spark = get_target("sp", None, cfg)
    assert spark.name == "spark" and spark.master == "local[*]"


def test_every_target_type_is_one_lazily_loaded_table_entry() -> None:
    import subprocess
    import typing

    from shipyard.compute.base import ComputeTarget
    from shipyard.compute.resolve import TARGETS, target_class
    from shipyard.config.compute import BUILT_IN, ComputeSpec

    models = typing.get_args(typing.get_args(ComputeSpec)[0])  # Annotated[Ssh | Ray | Spark, ...]
    configured = {typing.get_args(m.model_fields["type"].annotation)[0] for m in models}
    assert {t for t, _ in TARGETS} == set(BUILT_IN) | configured
    methods = [
        n for n in vars(ComputeTarget) if not n.startswith("_") and callable(getattr(ComputeTarget, n))
    ]
    assert {"from_spec", "probe", "submit"} <= set(methods)
    for type_, _ in TARGETS:
        cls = target_class(type_)
        assert cls.name == type_ and all(callable(getattr(cls, m, None)) for m in methods), type_
    cfg = project(compute={"sp": {"type": "spark"}})
    assert get_target("sp", None, cfg).probe() == "configured"  # nothing to check before a job
    code = (
        "import sys, shipyard.compute; "
        "print(sorted(m for m in sys.modules if m.startswith(('ray', 'shipyard.compute.'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['shipyard.compute.base', 'shipyard.compute.resolve']"


@pytest.mark.parametrize(
    ("compute", "message"),
    [
        ({"Bad_Name": {"type": "spark"}}, "lower-case letters"),
        ({"local": {"type": "spark"}}, "is built in"),
        ({"x": {"type": "azure"}}, "does not match any of the expected tags"),
        ({"x": {"type": "ssh", "host": "h", "key": "-----BEGIN OPENSSH PRIVATE KEY-----"}}, "reference"),
        ({"x": {"type": "ssh", "host": "-oProxyCommand=evil"}}, "is not a host name"),
        ({"x": {"type": "ray", "idle_minutes": -1}}, "greater than or equal to 0"),
        ({"x": {"type": "spark", "mastr": "local"}}, "Extra inputs are not permitted"),
    ],
)
def test_bad_compute_entries_are_refused_with_the_reason(compute: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        project(compute=compute)


def test_an_unknown_compute_name_lists_what_exists() -> None:
    cfg = project(compute={"vm": {"type": "ssh", "host": "h"}})
    with pytest.raises(ConfigError) as info:
        get_target("gpu", None, cfg)
    assert "compute target 'gpu' does not exist" in str(info.value)
    assert "local, venv, vm" in str(info.value) and "shipyard compute create gpu --type ray" in str(
        info.value
    )


def test_a_missing_ray_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.compute.ray.jobs import RayTarget

    monkeypatch.setitem(sys.modules, "ray.job_submission", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'shipyard\[ray\]'"):
        RayTarget("http://127.0.0.1:1").client  # noqa: B018


def test_launcher_config_is_valid_for_rays_own_schema(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    path = render(
        "launcher",
        tmp_path,
        "big",
        head_ip="10.0.0.4",
        worker_ips=["10.0.0.5", "10.0.0.6"],
        ssh_user="ubuntu",
        ssh_key_path="~/.ssh/id_ed25519",
        idle_minutes=30,
    )
    config = yaml.safe_load(path.read_text())
    assert config["provider"] == {
        "type": "local",
        "head_ip": "10.0.0.4",
        "worker_ips": ["10.0.0.5", "10.0.0.6"],
    }
    assert config["max_workers"] == 2 and config["idle_timeout_minutes"] == 30
    assert config["auth"] == {"ssh_user": "ubuntu", "ssh_private_key": "~/.ssh/id_ed25519"}
    broken = launcher_config("big", "10.0.0.4", [], "ubuntu", None) | {"max_workers": "many"}
    with pytest.raises(UsageError, match="not valid for Ray"):
        validate_launcher(broken)
    with pytest.raises(UsageError, match="--head-ip"):
        launcher_config("big", "", [], "ubuntu", None)


def test_kuberay_manifest_autoscales_between_min_and_max_workers(tmp_path: Path) -> None:
    path = render("kuberay", tmp_path, "big", num_cpus=4, min_workers=1, max_workers=8, idle_minutes=10)
    m = yaml.safe_load(path.read_text())
    assert (m["apiVersion"], m["kind"], m["metadata"]["name"]) == ("ray.io/v1", "RayCluster", "big")
    spec = m["spec"]
    assert spec["enableInTreeAutoscaling"] is True and spec["autoscalerOptions"]["idleTimeoutSeconds"] == 600
    group = spec["workerGroupSpecs"][0]
    assert (group["minReplicas"], group["maxReplicas"], group["replicas"]) == (1, 8, 1)
    container = group["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "4Gi"}
    head_ports = {p["name"] for p in spec["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]}
    assert head_ports == {"gcs", "dashboard", "client"}
    with pytest.raises(UsageError, match="more than --max-workers"):
        kuberay_manifest("big", min_workers=5, max_workers=2)
    with pytest.raises(UsageError, match="--provider 'aws'"):
        render("aws", tmp_path, "big")


def test_a_workspace_uri_with_a_password_is_not_put_into_rays_job_table(tmp_path: Path) -> None:
    from compute_support import step_job

    from shipyard.compute.ray.jobs import RayTarget

    job = step_job(tmp_path, "print('hi')\n", env={"SHIPYARD_DATABASE_URI": "postgresql://ml:hunter2@db/ws"})
    with pytest.raises(ConfigError, match="SHIPYARD_DATABASE_URI hold a password"):
        RayTarget("http://127.0.0.1:1", local=True).submit(job)  # refused before any connection


@pytest.mark.parametrize("name", ["../escaped", "a/../../escaped", "/abs", "x" * 5000])
def test_render_writes_only_inside_its_folder(tmp_path: Path, name: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(UsageError, match="compute name"):
        render("kuberay", out, name)
    assert sorted(p.name for p in tmp_path.rglob("*")) == []
