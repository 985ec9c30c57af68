"""Applying rendered manifests through the kubernetes client's dynamic client, against the
stand-in API server of tests/kube_support.py (no Kubernetes cluster can run or be reached here).
What is checked is Shipyard's side of the protocol (paths found by discovery, content type,
fieldManager/force, bodies, rollout logic, errors), not a cluster's behaviour: admission,
defaulting, field ownership and conflicts of server-side apply are never exercised
(docs/kubernetes.md).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_support import FakeApi, kubeconfig_text, running_api, url

from shipyard.config.models import DeploymentConfig
from shipyard.errors import ConfigError, DeploymentError
from shipyard.kube import load_manifests, render
from shipyard.kube.apply import Cluster, apply, delete, status

pytestmark = pytest.mark.integration


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    with running_api() as server:
        yield server


def kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text(server))
    return path


@pytest.fixture
def cluster(tmp_path: Path, fake_api: FakeApi) -> Cluster:
    return Cluster(kubeconfig(tmp_path, url(fake_api)), context="fake")


def rendered(tmp_path: Path, **extra: Any) -> list[dict[str, Any]]:
    cfg = DeploymentConfig.model_validate(
        {
            "name": "diab",
            "target": "kubernetes",
            "autoscale": {"replicas": 2},
            "kubernetes": {"namespace": "ml", "gateway": "web"},
            **extra,
        }
    )
    out = tmp_path / "manifests"
    render(
        "diab",
        "blue",
        "diabetes",
        "3",
        "shipyard/diabetes:3",
        cfg,
        out,
        keys={"primary": "ab" * 32},
        traffic={"blue": 100},
    )
    return load_manifests(out)


def test_apply_uses_server_side_apply_and_waits_for_rollout(tmp_path, fake_api, cluster) -> None:
    fake_api.polls_until_ready = 3
    objects = rendered(tmp_path)
    (result,) = apply(objects, cluster, timeout_s=30, poll_s=0.05)
    assert (result.name, result.namespace, result.replicas, result.ready_replicas) == (
        "diab-blue",
        "ml",
        2,
        2,
    )
    assert (
        result.rolled_out
        and {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"} in result.conditions
    )
    patches = [r for r in fake_api.requests if r["method"] == "PATCH"]
    assert [r["path"] for r in patches] == [
        "/api/v1/namespaces/ml/configmaps/diab-blue-settings",
        "/api/v1/namespaces/ml/secrets/diab-blue-keys",
        "/apis/apps/v1/namespaces/ml/deployments/diab-blue",
        "/api/v1/namespaces/ml/services/diab-blue",
        "/apis/policy/v1/namespaces/ml/poddisruptionbudgets/diab-blue",
        "/apis/gateway.networking.k8s.io/v1/namespaces/ml/httproutes/diab",
    ]
    for req in patches:
        assert req["content_type"] == "application/apply-patch+yaml"
        assert req["query"] == {"fieldManager": ["shipyard"], "force": ["true"]}
        assert req["auth"] == "Bearer test-token"
    assert [yaml.safe_load(r["body"]) for r in patches] == objects
    gets = [r["path"] for r in fake_api.requests if r["method"] == "GET"]
    polls = [p for p in gets if p == "/apis/apps/v1/namespaces/ml/deployments/diab-blue"]
    assert len(polls) == 3  # polled until the fake reported the pods ready
    # The paths came from discovery: the server's version, its groups, each group version used once.
    assert gets[:2] == ["/version", "/apis"]
    discovered = [p for p in gets if p.startswith(("/api/", "/apis/")) and "/namespaces/" not in p]
    assert sorted(discovered) == [
        "/api/v1",
        "/apis/apps/v1",
        "/apis/gateway.networking.k8s.io/v1",
        "/apis/policy/v1",
    ]


def test_rollout_timeout_reports_status(tmp_path, fake_api, cluster) -> None:
    fake_api.polls_until_ready = 10**6
    with pytest.raises(
        DeploymentError, match=r"rollout not finished after 0.3s: deployment ml/diab-blue: 0/2 ready"
    ):
        apply(rendered(tmp_path), cluster, timeout_s=0.3, poll_s=0.05)


def test_status_and_delete_by_label(tmp_path, fake_api, cluster) -> None:
    apply(rendered(tmp_path), cluster, wait=False)
    assert status(cluster, "diab", "blue", "ml").rolled_out
    deleted = delete(cluster, "diab", "blue", "ml")
    assert sorted(deleted) == [
        "ConfigMap/diab-blue-settings",
        "Deployment/diab-blue",
        "PodDisruptionBudget/diab-blue",
        "Secret/diab-blue-keys",
        "Service/diab-blue",
    ]
    lists = [r for r in fake_api.requests if r["method"] == "GET" and "labelSelector" in r["query"]]
    assert {r["query"]["labelSelector"][0] for r in lists} == {
        "ai.shipyard/endpoint=diab,ai.shipyard/slot=blue"
    }
    assert list(fake_api.objects) == ["/apis/gateway.networking.k8s.io/v1/namespaces/ml/httproutes/diab"]
    assert delete(cluster, "diab", None, "ml") == ["HTTPRoute/diab"]
    assert fake_api.objects == {}


def test_unreachable_cluster_is_one_clear_error(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = Cluster(kubeconfig(tmp_path, f"http://127.0.0.1:{port}"), timeout_s=2)
    with pytest.raises(DeploymentError, match=rf"cannot reach the Kubernetes API at http://127.0.0.1:{port}"):
        status(cluster, "diab", "blue")


def test_missing_kubeconfig_or_context_is_a_config_error(tmp_path, fake_api) -> None:
    with pytest.raises(ConfigError, match="cannot load Kubernetes credentials from .*nope"):
        Cluster(tmp_path / "nope")
    with pytest.raises(ConfigError, match="context 'prod'"):
        Cluster(kubeconfig(tmp_path, "http://127.0.0.1:1"), context="prod")


def test_a_kind_the_cluster_does_not_serve_is_named(tmp_path, fake_api, cluster) -> None:
    del fake_api.served["gateway.networking.k8s.io/v1"]  # no Gateway API CRDs installed
    with pytest.raises(DeploymentError, match=r"does not serve HTTPRoute .*install the Gateway API CRDs"):
        apply(rendered(tmp_path), cluster, wait=False)
    # What came before the route was applied; deleting skips the kind the cluster lacks.
    assert "/apis/apps/v1/namespaces/ml/deployments/diab-blue" in fake_api.objects
    assert "HTTPRoute/diab" not in delete(cluster, "diab", None, "ml")
    assert fake_api.objects == {}


def test_an_api_error_is_one_line_with_the_servers_message(tmp_path, fake_api, cluster) -> None:
    fake_api.refuse_patch = (403, 'secrets "diab-blue-keys" is forbidden: user cannot patch')
    with pytest.raises(DeploymentError) as info:
        apply(rendered(tmp_path), cluster, wait=False)
    message = str(info.value)
    assert message == (
        "Kubernetes API: cannot apply Secret/diab-blue-keys: HTTP 403: "
        'secrets "diab-blue-keys" is forbidden: user cannot patch'
    )
    assert "\n" not in message
