"""Apply rendered objects to a cluster with server-side apply, wait for the rollout, report, delete.

Server-side apply (PATCH with application/apply-patch+yaml, field manager "shipyard", conflicts
forced) makes applying idempotent and leaves fields other managers own (an HPA's replica count)
alone. The REST paths come from a fixed table of the kinds Shipyard renders, so applying needs no
discovery round trips. Talking to the API goes through the official client's ApiClient (auth,
TLS and exec plugins from the kubeconfig), and every failure to reach or use the cluster becomes
one DeploymentError or ConfigError line.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from shipyard.errors import ConfigError, DeploymentError
from shipyard.kube.manifests import selector
from shipyard.kube.yamlio import APPLY_ORDER, order_key

FIELD_MANAGER = "shipyard"
APPLY_PATCH = "application/apply-patch+yaml"
# kind -> (API path prefix, plural)
RESOURCES: dict[str, tuple[str, str]] = {
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Secret": ("/api/v1", "secrets"),
    "Service": ("/api/v1", "services"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "HorizontalPodAutoscaler": ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
    "CronJob": ("/apis/batch/v1", "cronjobs"),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    "HTTPRoute": ("/apis/gateway.networking.k8s.io/v1", "httproutes"),
}


@dataclass
class RolloutStatus:
    """What `kubectl rollout status` looks at, for one Deployment."""

    name: str
    namespace: str
    replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    generation: int = 0
    observed_generation: int = 0
    conditions: list[dict[str, str]] = field(default_factory=list)

    @property
    def rolled_out(self) -> bool:
        return (
            self.observed_generation >= self.generation
            and self.updated_replicas == self.replicas
            and self.available_replicas == self.replicas
            and self.ready_replicas == self.replicas
        )

    def summary(self) -> str:
        conds = ", ".join(
            f"{c['type']}={c['status']}" + (f" ({c['reason']})" if c.get("reason") else "")
            for c in self.conditions
        )
        return (
            f"deployment {self.namespace}/{self.name}: {self.ready_replicas}/{self.replicas} ready, "
            f"{self.updated_replicas} updated, {self.available_replicas} available"
            + (f"; {conds}" if conds else "")
        )


class Cluster:
    """A connection to one cluster from a kubeconfig (default: ~/.kube/config, current context)."""

    def __init__(self, kubeconfig: Path | None = None, context: str | None = None, timeout_s: float = 15):
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        configuration = client.Configuration()
        try:
            config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (ConfigException, FileNotFoundError, OSError) as exc:
            where = str(kubeconfig) if kubeconfig else "the default kubeconfig (KUBECONFIG or ~/.kube/config)"
            raise ConfigError(
                f"cannot load Kubernetes credentials from {where}"
                + (f" (context {context!r})" if context else "")
                + f": {exc}. Set deployment.kubernetes.context or KUBECONFIG."
            ) from None
        configuration.retries = 0
        self.host = configuration.host
        self.timeout_s = timeout_s
        self._api = client.ApiClient(configuration)

    def request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None = None,
        body: str | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, Any]]:
        """One API call; returns (HTTP status, decoded JSON body). Unreachable → DeploymentError."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        _method, url, headers, _body, _post = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=None,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(
                method, url, header_params=headers, body=body, _request_timeout=self.timeout_s
            )
            response.read()
        except Exception as exc:  # noqa: BLE001 - urllib3 raises many kinds; all mean unreachable
            raise DeploymentError(f"cannot reach the Kubernetes API at {self.host}: {_reason(exc)}") from None
        data: dict[str, Any] = json.loads(response.data) if response.data else {}
        return response.status, data

    def checked(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        status, data = self.request(method, path, **kwargs)
        if status >= 400:
            message = data.get("message") or data or "no message"
            raise DeploymentError(f"Kubernetes API {method} {path} failed with HTTP {status}: {message}")
        return data


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc).splitlines()[0][:300]


def _path(kind: str, namespace: str, name: str | None = None) -> str:
    if kind not in RESOURCES:
        raise DeploymentError(f"cannot apply kind {kind!r}: Shipyard knows {', '.join(sorted(RESOURCES))}")
    prefix, plural = RESOURCES[kind]
    path = f"{prefix}/namespaces/{quote(namespace)}/{plural}"
    return f"{path}/{quote(name)}" if name else path


def apply(
    objects: list[dict[str, Any]],
    cluster: Cluster,
    *,
    wait: bool = True,
    timeout_s: float = 300,
    poll_s: float = 2,
) -> list[RolloutStatus]:
    """Server-side apply every object (in dependency order), then wait for each Deployment's rollout."""
    deployments = []
    for obj in sorted(objects, key=order_key):
        meta = obj["metadata"]
        body = json.dumps(obj, sort_keys=True)  # JSON is YAML: the apply-patch+yaml body
        cluster.checked(
            "PATCH",
            _path(obj["kind"], meta["namespace"], meta["name"]),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            body=body,
            content_type=APPLY_PATCH,
        )
        if obj["kind"] == "Deployment":
            deployments.append((meta["namespace"], meta["name"]))
    if not wait:
        return [deployment_status(cluster, ns, name) for ns, name in deployments]
    return [wait_rollout(cluster, ns, name, timeout_s=timeout_s, poll_s=poll_s) for ns, name in deployments]


def deployment_status(cluster: Cluster, namespace: str, name: str) -> RolloutStatus:
    data = cluster.checked("GET", _path("Deployment", namespace, name))
    st, spec, meta = data.get("status", {}), data.get("spec", {}), data.get("metadata", {})
    return RolloutStatus(
        name=name,
        namespace=namespace,
        replicas=int(spec.get("replicas", 1)),
        updated_replicas=int(st.get("updatedReplicas", 0)),
        ready_replicas=int(st.get("readyReplicas", 0)),
        available_replicas=int(st.get("availableReplicas", 0)),
        generation=int(meta.get("generation", 0)),
        observed_generation=int(st.get("observedGeneration", 0)),
        conditions=[
            {k: str(c[k]) for k in ("type", "status", "reason", "message") if k in c}
            for c in st.get("conditions", [])
        ],
    )


def wait_rollout(
    cluster: Cluster, namespace: str, name: str, *, timeout_s: float = 300, poll_s: float = 2
) -> RolloutStatus:
    """Poll until the new ReplicaSet is fully available; fail at once on ProgressDeadlineExceeded."""
    deadline = time.monotonic() + timeout_s
    while True:
        current = deployment_status(cluster, namespace, name)
        if current.rolled_out:
            return current
        for cond in current.conditions:
            if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
                raise DeploymentError(f"rollout failed: {current.summary()}: {cond.get('message', '')}")
        if time.monotonic() >= deadline:
            raise DeploymentError(f"rollout not finished after {timeout_s:g}s: {current.summary()}")
        time.sleep(poll_s)


def status(cluster: Cluster, endpoint: str, slot: str, namespace: str = "default") -> RolloutStatus:
    """The rollout status of one slot's Deployment."""
    return deployment_status(cluster, namespace, f"{endpoint}-{slot}")


def delete(cluster: Cluster, endpoint: str, slot: str | None = None, namespace: str = "default") -> list[str]:
    """Delete everything Shipyard rendered for the endpoint (or one slot); returns 'Kind/name's deleted."""
    labels = selector(endpoint, slot) if slot else {"ai.shipyard/endpoint": endpoint}
    label_selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    deleted = []
    for kind in reversed(APPLY_ORDER):
        if kind == "HTTPRoute" and slot:
            continue  # the route is the endpoint's: removing one slot is a traffic change, not a delete
        status_code, listing = cluster.request(
            "GET", _path(kind, namespace), query=[("labelSelector", label_selector)]
        )
        if status_code == 404:
            continue  # e.g. the Gateway API CRDs are not installed
        if status_code >= 400:
            raise DeploymentError(
                f"cannot list {kind} in {namespace}: HTTP {status_code}: {listing.get('message')}"
            )
        for item in listing.get("items", []):
            name = item["metadata"]["name"]
            code, body = cluster.request(
                "DELETE", _path(kind, namespace, name), query=[("propagationPolicy", "Background")]
            )
            if code >= 400 and code != 404:
                raise DeploymentError(f"cannot delete {kind}/{name}: HTTP {code}: {body.get('message')}")
            deleted.append(f"{kind}/{name}")
    return deleted
