"""The Kubernetes target's kubeconfig from a `secrets:` reference, against the stand-in API server
(tests/kube_support.py: no cluster can run here). Applying records an active deployment; a
missing or wrong kubeconfig is one line naming what to set, and nothing changes: no request
reaches the cluster, no keys are made, the endpoint keeps its previous deployment."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from bundles import make_bundle
from deploy_support import bundle_at, make_ws
from kube_support import FakeApi, kubeconfig_text, running_api, url

from shipyard.config.models import DeploymentConfig
from shipyard.deploy.endpoints import active_deployment
from shipyard.deploy.targets.kubernetes import deploy_kubernetes
from shipyard.errors import ConfigError
from shipyard.registry import register
from shipyard.secrets import Secrets

pytestmark = pytest.mark.integration
TOKEN = "kube-token-5f2b9c0e7d"
DUMP = "import sqlite3, sys; print('\\n'.join(sqlite3.connect(sys.argv[1]).iterdump()))"


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    with running_api() as server:
        yield server


def cfg(name: str = "kprod") -> DeploymentConfig:
    return DeploymentConfig.model_validate(
        {"name": name, "target": "kubernetes", "kubernetes": {"namespace": "ml", "kubeconfig": "KUBE"}}
    )


def secrets(root: Path) -> Secrets:
    return Secrets({"KUBE": "env:SY_TEST_KUBECONFIG"}, root=root)


def database_text(db: Path) -> str:
    """The whole SQLite database as SQL, read in a child process (never open it in this one)."""
    return subprocess.run(
        [sys.executable, "-c", DUMP, str(db)], capture_output=True, text=True, check=True
    ).stdout


def test_kubeconfig_from_a_secret_applies_and_a_missing_one_changes_nothing(
    tmp_path, fake_api, monkeypatch
) -> None:
    ws = make_ws(tmp_path / "ws")
    monkeypatch.setenv("SY_TEST_KUBECONFIG", kubeconfig_text(url(fake_api), TOKEN))
    bundle = bundle_at(tmp_path / "b1", "1")
    first = deploy_kubernetes(ws, bundle, cfg(), apply=True, secrets=secrets(tmp_path), timeout_s=10)
    assert first["applied"] is True
    (rollout,) = first["rollout"]
    assert rollout == (
        "deployment ml/kprod-blue: 1/1 ready, 1 updated, 1 available; "
        "Available=True (MinimumReplicasAvailable)"
    )
    assert {r["auth"] for r in fake_api.requests} == {f"Bearer {TOKEN}"}
    serving = active_deployment(ws, "kprod")
    assert serving is not None and (serving.model_version, serving.target) == ("1", "kubernetes")
    # The kubeconfig went to the client only: not into the result, the store or the files.
    assert TOKEN not in json.dumps(first)
    stored = database_text(ws.root / "shipyard.db")
    assert "kprod" in stored and TOKEN not in stored
    assert not any(TOKEN in p.read_text() for p in ws.root.rglob("*.yaml"))

    # The variable is unset: one line naming it, no request, the same deployment serving.
    monkeypatch.delenv("SY_TEST_KUBECONFIG")
    sent = len(fake_api.requests)
    with pytest.raises(
        ConfigError, match=r"^secrets.KUBE: environment variable SY_TEST_KUBECONFIG is not set"
    ):
        deploy_kubernetes(ws, bundle_at(tmp_path / "b2", "2"), cfg(), apply=True, secrets=secrets(tmp_path))
    assert len(fake_api.requests) == sent
    assert active_deployment(ws, "kprod").model_version == "1"  # type: ignore[union-attr]
    # A new endpoint that fails so gets no keys either (they would be shown once, to nobody).
    with pytest.raises(ConfigError, match="SY_TEST_KUBECONFIG"):
        deploy_kubernetes(ws, bundle, cfg("kqa"), apply=True, secrets=secrets(tmp_path))
    assert "kqa" not in database_text(ws.root / "shipyard.db")


def test_the_secret_may_hold_a_path_and_anything_else_is_refused_unshown(
    tmp_path, fake_api, monkeypatch
) -> None:
    ws = make_ws(tmp_path / "ws")
    path = tmp_path / "ci-kubeconfig"
    path.write_text(kubeconfig_text(url(fake_api), TOKEN))
    monkeypatch.setenv("SY_TEST_KUBECONFIG", str(path))  # what a CI system's file variable gives
    done = deploy_kubernetes(
        ws, bundle_at(tmp_path / "b1", "1"), cfg(), apply=True, secrets=secrets(tmp_path), timeout_s=10
    )
    assert done["applied"] is True and fake_api.requests
    pasted = "token: not-a-kubeconfig-81c3\nserver: nowhere"
    monkeypatch.setenv("SY_TEST_KUBECONFIG", pasted)
    with pytest.raises(ConfigError) as info:
        deploy_kubernetes(ws, bundle_at(tmp_path / "b2", "2"), cfg(), apply=True, secrets=secrets(tmp_path))
    assert str(info.value).startswith("secrets.KUBE: the value is not a kubeconfig")
    assert "not-a-kubeconfig-81c3" not in str(info.value) and "\n" not in str(info.value)


def test_kubeconfig_setting_names_a_secret_and_never_echoes_a_pasted_value() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        DeploymentConfig.model_validate({"kubernetes": {"kubeconfig": "apiVersion: v1\nclusters: [x]"}})
    (error,) = info.value.errors()
    assert error["type"] == "secret_reference" and "secrets: section" in error["msg"]


def test_env_deploy_to_kubernetes_from_the_cli_and_a_missing_kubeconfig_keeps_the_version(
    tmp_path, fake_api, monkeypatch, cli
) -> None:
    """`shipyard env deploy prod` applies with the secret's kubeconfig; without it the command
    says what to set in one line and prod still serves v1."""
    built, _ = make_bundle(tmp_path / "built")
    folder = tmp_path / "project"
    folder.mkdir()
    for name in ("score.py", "requirements.txt"):
        shutil.copy2(built / name, folder / name)
    kube = {"namespace": "ml", "kubeconfig": "KUBE"}
    config = {
        "name": "diabetes",
        "registry": {"model_name": "diabetes-ridge"},
        "deployment": {"entry_script": "score.py", "requirements": "requirements.txt"},
        "secrets": {"KUBE": "env:SY_TEST_KUBECONFIG"},
        "environments": {"prod": {"deployment": {"target": "kubernetes", "kubernetes": kube}}},
    }
    (folder / "shipyard.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    ws = make_ws(tmp_path / "ws")
    for _ in range(2):
        run = ws.mlflow.create_run(ws.experiment_id("diabetes"))
        ws.mlflow.set_terminated(run.info.run_id)
        register(ws, "diabetes-ridge", run.info.run_id, str(built / "model" / "diabetes-ridge" / "3"))
    opts = ("--project", str(folder), "--workspace", str(ws.root))

    monkeypatch.setenv("SY_TEST_KUBECONFIG", kubeconfig_text(url(fake_api), TOKEN))
    res = cli("env", "deploy", "prod", "--version", "1", *opts, "-o", "json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["model_version"] == "1"
    patched = {r["path"] for r in fake_api.requests if r["method"] == "PATCH"}
    assert "/apis/apps/v1/namespaces/ml/deployments/diabetes-prod-blue" in patched
    assert TOKEN not in res.out + res.err

    monkeypatch.delenv("SY_TEST_KUBECONFIG")
    res = cli("env", "deploy", "prod", "--version", "2", *opts)
    assert res.code != 0
    (line,) = res.err.strip().splitlines()
    assert "secrets.KUBE: environment variable SY_TEST_KUBECONFIG is not set" in line
    status = cli("env", "status", *opts, "-o", "json")
    assert status.code == 0, status.err
    (prod,) = json.loads(status.out)
    assert (prod["env"], prod["model_version"], prod["target"]) == ("prod", "1", "kubernetes")
    ws.store.dispose()
