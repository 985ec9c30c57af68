"""A stand-in Kubernetes API server for the apply tests (no cluster can run or be reached here).

It answers what the real kubernetes client asks: discovery (/version, /apis and the group
versions, listing the kinds Shipyard renders, from SERVED), then server-side-apply PATCHes, GETs
(objects, label-selected lists) and DELETEs. It records every request and reports a Deployment as
rolled out after `polls_until_ready` polls. `kubeconfig_text` points the real client at it.
Admission, defaulting, field ownership and apply conflicts are not modelled (docs/kubernetes.md).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

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


@contextmanager
def running_api() -> Iterator[FakeApi]:
    server = FakeApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def kubeconfig_text(server: str, token: str = "test-token") -> str:
    """A kubeconfig (context `fake`) for `server` with a bearer token."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": server}}],
            "users": [{"name": "tester", "user": {"token": token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}],
        }
    )


def url(server: FakeApi) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"
