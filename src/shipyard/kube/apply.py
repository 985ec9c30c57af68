"""Apply rendered objects to a cluster with server-side apply, wait for the rollout, report, delete.

The Kubernetes client's dynamic client does the talking: it finds each kind's REST path by
discovery (/version, /apis, then the group versions it needs) and applies with server-side apply
(PATCH application/apply-patch+yaml, field manager "shipyard", conflicts forced), which makes
applying idempotent and leaves fields other managers own (an HPA's replica count) alone. Auth,
TLS and exec plugins come from the kubeconfig through the client's own loader. What stays ours is
the order of objects, the rollout wait (`kubectl rollout status`'s rule) and turning every failure
to reach or use the cluster into one DeploymentError or ConfigError line.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from shipyard.errors import ConfigError, DeploymentError
from shipyard.kube.manifests import LABEL_ENDPOINT, selector
from shipyard.kube.yamlio import APPLY_ORDER, order_key

FIELD_MANAGER = "shipyard"
# The apiVersion of each kind Shipyard renders: what `delete` lists by label.
API_VERSIONS: dict[str, str] = {
    "ServiceAccount": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
    "CronJob": "batch/v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
    "HTTPRoute": "gateway.networking.k8s.io/v1",
}
T = TypeVar("T")


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
    """A connection to one cluster from a kubeconfig: a file (default: KUBECONFIG or
    ~/.kube/config, current context) or its parsed content (from a `secrets:` reference)."""

    def __init__(
        self,
        kubeconfig: Path | dict[str, Any] | None = None,
        context: str | None = None,
        timeout_s: float = 15,
        *,
        source: str | None = None,
    ):
        """`source` names where a kubeconfig given as content came from, for messages."""
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        # Private to this object: discovery's cache and the certificate files the client writes
        # from a kubeconfig's *-data fields; removed with it.
        self._scratch = tempfile.TemporaryDirectory(prefix="shipyard-kube-")
        configuration = client.Configuration()
        try:
            if isinstance(kubeconfig, dict):
                config.load_kube_config_from_dict(
                    kubeconfig,
                    context=context,
                    client_configuration=configuration,
                    persist_config=False,
                    temp_file_path=self._scratch.name,
                )
            else:
                config.load_kube_config(
                    config_file=str(kubeconfig) if kubeconfig else None,
                    context=context,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except (ConfigException, FileNotFoundError, OSError, TypeError, KeyError, AttributeError) as exc:
            where = source or (
                str(kubeconfig) if kubeconfig else "the default kubeconfig (KUBECONFIG or ~/.kube/config)"
            )
            raise ConfigError(
                f"cannot load Kubernetes credentials from {where}"
                + (f" (context {context!r})" if context else "")
                + f": {_reason(exc)}. Set deployment.kubernetes.kubeconfig to a secrets: entry "
                "(docs/kubernetes.md), deployment.kubernetes.context, or KUBECONFIG."
            ) from None
        configuration.retries = 0
        self.host = configuration.host
        self.timeout_s = timeout_s
        self._api = client.ApiClient(configuration)
        self._dynamic: Any = None

    @property
    def dynamic(self) -> Any:
        """The dynamic client; made (and the cluster's API groups discovered) on first use."""
        if self._dynamic is None:
            from kubernetes.dynamic import DynamicClient

            timeout_s = self.timeout_s

            class TimedClient(DynamicClient):
                """A timeout on every request, discovery's included (the client leaves them unbounded)."""

                def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
                    params.setdefault("_request_timeout", timeout_s)
                    return super().request(method, path, body, **params)

            cache = str(Path(self._scratch.name) / "discovery.json")
            self._dynamic = self.call("discover the API", lambda: TimedClient(self._api, cache_file=cache))
        return self._dynamic

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one client call; an API error or an unreachable server becomes one DeploymentError."""
        from kubernetes.client.exceptions import ApiException

        try:
            return fn()
        except ApiException as exc:
            raise DeploymentError(
                f"Kubernetes API: cannot {what}: HTTP {exc.status}: {_api_message(exc)}"
            ) from None
        except DeploymentError:
            raise
        except Exception as exc:  # noqa: BLE001 - urllib3 raises many kinds; all mean unreachable
            raise DeploymentError(f"cannot reach the Kubernetes API at {self.host}: {_reason(exc)}") from None

    def resource(self, api_version: str, kind: str) -> Any:
        """The API resource of `kind` (None when the cluster does not serve it, e.g. a CRD missing)."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        resources = self.dynamic.resources
        # The core group lives under /api: saying so keeps discovery from reading every */v1 group.
        prefix = "apis" if "/" in api_version else "api"

        def find() -> Any:
            try:
                return resources.get(prefix=prefix, api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                return None

        return self.call(f"find {kind}", find)

    def served(self, api_version: str, kind: str) -> Any:
        """The API resource of `kind`; DeploymentError naming it when the cluster lacks it."""
        resource = self.resource(api_version, kind)
        if resource is None:
            raise DeploymentError(
                f"the cluster at {self.host} does not serve {kind} ({api_version})"
                + (": install the Gateway API CRDs" if kind == "HTTPRoute" else "")
            )
        return resource


def kubeconfig_value(value: str, source: str) -> Path | dict[str, Any]:
    """A kubeconfig given as a secret's value: its YAML content, or the path of a file holding it
    (what CI systems' file variables give). Errors name `source`, never the value."""
    import yaml

    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = None  # yaml's message would quote the text
    if isinstance(parsed, dict) and "clusters" in parsed:
        return parsed
    path = Path(value.strip()).expanduser() if "\n" not in value.strip() else None
    if path is not None and path.is_file():
        return path
    raise ConfigError(
        f"{source}: the value is not a kubeconfig (YAML with clusters, users and contexts) nor the "
        "path of a file holding one; point the reference at one, e.g. file:~/.kube/ci-config or "
        "env:KUBECONFIG_DATA (value not shown)"
    )


def _api_message(exc: Any) -> str:
    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason or "no message")


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc).splitlines()[0][:300]


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
        resource = cluster.served(obj["apiVersion"], obj["kind"])
        cluster.call(
            f"apply {obj['kind']}/{meta['name']}",
            partial(
                cluster.dynamic.server_side_apply,
                resource,
                body=obj,
                namespace=meta["namespace"],
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            ),
        )
        if obj["kind"] == "Deployment":
            deployments.append((meta["namespace"], meta["name"]))
    if not wait:
        return [deployment_status(cluster, ns, name) for ns, name in deployments]
    return [wait_rollout(cluster, ns, name, timeout_s=timeout_s, poll_s=poll_s) for ns, name in deployments]


def deployment_status(cluster: Cluster, namespace: str, name: str) -> RolloutStatus:
    resource = cluster.served(API_VERSIONS["Deployment"], "Deployment")
    data = cluster.call(
        f"read Deployment {namespace}/{name}",
        lambda: cluster.dynamic.get(resource, name=name, namespace=namespace).to_dict(),
    )
    st, spec, meta = data.get("status") or {}, data.get("spec") or {}, data.get("metadata") or {}
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
            for c in st.get("conditions") or []
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
    labels = selector(endpoint, slot) if slot else {LABEL_ENDPOINT: endpoint}
    label_selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    deleted = []
    for kind in reversed(APPLY_ORDER):
        if kind == "HTTPRoute" and slot:
            continue  # the route is the endpoint's: removing one slot is a traffic change, not a delete
        resource = cluster.resource(API_VERSIONS[kind], kind)
        if resource is None:
            continue  # e.g. the Gateway API CRDs are not installed: nothing of that kind to delete
        listing = cluster.call(
            f"list {kind} in {namespace}",
            partial(_listing, cluster, resource, namespace, label_selector),
        )
        for item in listing.get("items") or []:
            name = item["metadata"]["name"]
            cluster.call(f"delete {kind}/{name}", partial(_delete_one, cluster, resource, name, namespace))
            deleted.append(f"{kind}/{name}")
    return deleted


def _listing(cluster: Cluster, resource: Any, namespace: str, label_selector: str) -> dict[str, Any]:
    return cluster.dynamic.get(resource, namespace=namespace, label_selector=label_selector).to_dict()


def _delete_one(cluster: Cluster, resource: Any, name: str, namespace: str) -> None:
    from kubernetes.dynamic.exceptions import NotFoundError

    try:
        cluster.dynamic.delete(resource, name=name, namespace=namespace, propagation_policy="Background")
    except NotFoundError:
        pass  # already gone is what we wanted
