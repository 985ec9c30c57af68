"""Applying rendered manifests through the kubernetes client, against a stand-in API server.

No Kubernetes cluster can run or be reached here, so these tests run a small fake Kubernetes API
server (http.server on 127.0.0.1) that answers what the real dynamic client asks: discovery
(/version, /apis and the group versions, listing the kinds Shipyard renders, from the table
below), then PATCH/GET/DELETE on objects. It records every request and reports Deployments as
rolled out after a set number of polls. A generated kubeconfig points the real kubernetes client
at it. What is checked is Shipyard's side of the protocol (paths found by discovery, content
type, fieldManager/force, bodies, rollout logic, errors), not a cluster's behaviour: admission,
defaulting, field ownership and conflicts of server-side apply are never exercised
(docs/kubernetes.md).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from shipyard.config.models import DeploymentConfig
from shipyard.errors import ConfigError, DeploymentError
from shipyard.kube import load_manifests, render
from shipyard.kube.apply import Cluster, apply, delete, status

pytestmark = pytest.mark.integration

# group version -> (kind, plural) it serves: what a cluster with the Gateway API CRDs lists.
SERVED = {
    "v1": [
        ("ConfigMap", "configmaps"),
        ("Secret", "secrets"),
        ("Service", "services"),
        ("ServiceAccount", "serviceaccounts"),
    ],
    "apps/v1": [("Deployment", "deployments")],
    "autoscaling/v2": [("HorizontalPodAutoscaler", "horizontalpodautoscalers")],
    "policy/v1": [("PodDisruptionBudget", "poddisruptionbudgets")],
    "batch/v1": [("CronJob", "cronjobs")],
    "rbac.authorization.k8s.io/v1": [("Role", "roles"), ("RoleBinding", "rolebindings")],
    "gateway.networking.k8s.io/v1": [("HTTPRoute", "httproutes")],
}


class FakeApi(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict[str, Any]] = []
        self.objects: dict[str, dict[str, Any]] = {}
        self.polls_until_ready = 1
        self.polls: dict[str, int] = {}
        self.served = dict(SERVED)
        self.refuse_patch: tuple[int, str] | None = None  # (status, message) for PATCHes of Secrets
        self.lock = threading.Lock()

    def discovery(self, path: str) -> dict[str, Any] | None:
        """The answer of a discovery path, None for any other path."""
        if path == "/version":
            return {"major": "1", "minor": "30", "gitVersion": "v1.30.0", "platform": "linux/amd64"}
        if path == "/apis":
            groups = [gv for gv in self.served if "/" in gv]
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": gv.split("/")[0],
                        "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                        "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]},
                    }
                    for gv in groups
                ],
            }
        gv = path.removeprefix("/api/").removeprefix("/apis/")
        if path.startswith(("/api/", "/apis/")) and gv in self.served:
            return {
                "kind": "APIResourceList",
                "groupVersion": gv,
                "resources": [
                    {
                        "name": plural,
                        "singularName": kind.lower(),
                        "namespaced": True,
                        "kind": kind,
                        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                    }
                    for kind, plural in self.served[gv]
                ],
            }
        return None


class Handler(BaseHTTPRequestHandler):
    server: FakeApi

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> tuple[str, dict[str, list[str]], bytes]:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.requests.append(
                {
                    "method": self.command,
                    "path": url.path,
                    "query": parse_qs(url.query),
                    "content_type": self.headers.get("Content-Type"),
                    "auth": self.headers.get("Authorization"),
                    "body": body,
                }
            )
        return url.path, parse_qs(url.query), body

    def do_PATCH(self) -> None:
        path, _, body = self._record()
        if self.server.refuse_patch and "/secrets/" in path:
            code, message = self.server.refuse_patch
            return self._reply(
                code, {"kind": "Status", "status": "Failure", "message": message, "code": code}
            )
        obj = yaml.safe_load(body)
        old = self.server.objects.get(path)
        obj.setdefault("metadata", {})["generation"] = (old["metadata"]["generation"] + 1) if old else 1
        self.server.objects[path] = obj
        self._reply(200, obj)

    def do_GET(self) -> None:
        path, query, _ = self._record()
        discovered = self.server.discovery(path)
        if discovered is not None:
            return self._reply(200, discovered)
        if path in self.server.objects:
            obj = json.loads(json.dumps(self.server.objects[path]))
            if obj["kind"] == "Deployment":
                polls = self.server.polls[path] = self.server.polls.get(path, 0) + 1
                want = obj["spec"].get("replicas", 1)
                ready = want if polls >= self.server.polls_until_ready else 0
                obj["status"] = {
                    "observedGeneration": obj["metadata"]["generation"],
                    "replicas": want,
                    "updatedReplicas": want,
                    "readyReplicas": ready,
                    "availableReplicas": ready,
                    "conditions": [
                        {
                            "type": "Available",
                            "status": "True" if ready else "False",
                            "reason": "MinimumReplicasAvailable",
                        }
                    ],
                }
            return self._reply(200, obj)
        if "labelSelector" in query:
            wanted = dict(p.split("=", 1) for p in query["labelSelector"][0].split(","))
            items = [
                o
                for p, o in self.server.objects.items()
                if p.rsplit("/", 1)[0] == path and wanted.items() <= o["metadata"].get("labels", {}).items()
            ]
            return self._reply(200, {"kind": "List", "items": items})
        self._reply(404, {"kind": "Status", "message": f"{path} not found"})

    def do_DELETE(self) -> None:
        path, _, _ = self._record()
        if self.server.objects.pop(path, None) is None:
            return self._reply(404, {"kind": "Status", "message": "not found"})
        self._reply(200, {"kind": "Status", "status": "Success"})


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    server = FakeApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": server}}],
                "users": [{"name": "tester", "user": {"token": "test-token"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}],
            }
        )
    )
    return path


@pytest.fixture
def cluster(tmp_path: Path, fake_api: FakeApi) -> Cluster:
    return Cluster(kubeconfig(tmp_path, f"http://127.0.0.1:{fake_api.server_address[1]}"), context="fake")


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
