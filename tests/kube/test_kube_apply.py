"""Applying rendered manifests through the kubernetes client, against a stand-in API server.

No Kubernetes cluster can run or be reached here, so these tests run a small fake Kubernetes API
server (http.server on 127.0.0.1) that answers the PATCH/GET/DELETE requests the real client
sends, records every request, and reports Deployments as rolled out after a set number of polls.
A generated kubeconfig points the real kubernetes client at it. What is checked is Shipyard's
side of the protocol (paths, content type, fieldManager/force, bodies, rollout logic, errors),
not a cluster's behaviour.
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


class FakeApi(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict[str, Any]] = []
        self.objects: dict[str, dict[str, Any]] = {}
        self.polls_until_ready = 1
        self.polls: dict[str, int] = {}
        self.lock = threading.Lock()


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
        obj = yaml.safe_load(body)
        old = self.server.objects.get(path)
        obj.setdefault("metadata", {})["generation"] = (old["metadata"]["generation"] + 1) if old else 1
        self.server.objects[path] = obj
        self._reply(200, obj)

    def do_GET(self) -> None:
        path, query, _ = self._record()
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
    gets = [r for r in fake_api.requests if r["method"] == "GET"]
    assert len(gets) == 3  # polled until the fake reported the pods ready


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
