"""Kubernetes objects for one deployment slot (e.g. blue or green) of an endpoint, as plain dicts.

Every slot is self-contained: its own ConfigMap (serving settings), Secret (key hashes), Deployment,
Service, PodDisruptionBudget, HorizontalPodAutoscaler (when autoscaling) and, with a TTL, a CronJob
that deletes the slot by label once it expires. Deleting a slot is therefore one label selector,
and two slots never share an object that a rollback would have to untangle.

The output is a pure function of the input: no clocks, no random names, sorted keys when dumped;
the pod template carries a hash of the settings and keys so that changing either rolls the pods.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shipyard.config.models import DeploymentConfig
from shipyard.errors import UsageError
from shipyard.names import check_name

PORT = 8080
SERVICE_PORT = 80
BUNDLE_DIR = "/app/bundle"
CONFIG_DIR = "/etc/shipyard/settings"
KEYS_DIR = "/etc/shipyard/keys"
CAPTURE_DIR = "/var/lib/shipyard/capture"
RUN_AS_USER = 10001

LABEL_ENDPOINT = "ai.shipyard/endpoint"
LABEL_SLOT = "ai.shipyard/slot"
EXPIRES = "ai.shipyard/expires-at"
INSTANCE = "app.kubernetes.io/instance"
_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class SlotSpec:
    """What one slot runs: `keys` are the endpoint's key *hashes* (deploy/keys.py), never keys."""

    endpoint: str
    slot: str
    model_name: str
    model_version: str
    image: str
    config: DeploymentConfig
    keys: dict[str, str] = field(default_factory=dict)
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        check_name("Kubernetes slot name", self.slot)
        check_name("endpoint name", self.endpoint)
        check_name("model name", self.model_name)
        if not self.image or any(c.isspace() for c in self.image):
            raise UsageError(f"image {self.image!r}: give an image reference such as name:tag")

    @property
    def name(self) -> str:
        return f"{self.endpoint}-{self.slot}"

    @property
    def namespace(self) -> str:
        return self.config.kubernetes.namespace


def label_value(text: str) -> str:
    """A valid label value (63 chars of [A-Za-z0-9._-], alphanumeric at both ends)."""
    return _LABEL_VALUE_BAD.sub("-", text)[:63].strip("-._") or "none"


def selector(endpoint: str, slot: str) -> dict[str, str]:
    """The labels that pick exactly one slot's objects (immutable Deployment selector)."""
    return {LABEL_ENDPOINT: endpoint, LABEL_SLOT: slot}


def labels(spec: SlotSpec) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": spec.endpoint,
        INSTANCE: spec.name,
        "app.kubernetes.io/version": label_value(spec.model_version),
        "app.kubernetes.io/component": "scoring",
        "app.kubernetes.io/part-of": "shipyard",
        "app.kubernetes.io/managed-by": "shipyard",
        "ai.shipyard/model": label_value(spec.model_name),
        "ai.shipyard/model-version": label_value(spec.model_version),
        **selector(spec.endpoint, spec.slot),
    }
    if spec.expires_at is not None:
        out[EXPIRES] = str(int(utc(spec.expires_at).timestamp()))
    return out


def utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def meta(spec: SlotSpec, name: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name or spec.name, "namespace": spec.namespace, "labels": labels(spec)}
    if spec.expires_at is not None:
        meta["annotations"] = {EXPIRES: utc(spec.expires_at).isoformat(timespec="seconds")}
    return meta


def auth_on(spec: SlotSpec) -> bool:
    return spec.config.serving.auth is not False


def settings_json(spec: SlotSpec) -> str:
    return json.dumps(spec.config.serving.model_dump(mode="json"), sort_keys=True)


def config_map(spec: SlotSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(spec, f"{spec.name}-settings"),
        "data": {"settings.json": settings_json(spec)},
    }


def keys_secret(spec: SlotSpec) -> dict[str, Any]:
    """The keys file the server reads: SHA-256 hashes only (a leaked Secret grants no access).

    Written as `data` (base64), the form the API server stores and returns, so a GitOps diff
    against the live object stays quiet (`stringData` is write-only and always differs); `podman
    kube play` also mounts nothing from `stringData` (docs/kubernetes.md)."""
    for slot, value in spec.keys.items():
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise UsageError(f"key {slot!r}: expected a SHA-256 hex hash, never a plain key")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(spec, f"{spec.name}-keys"),
        "type": "Opaque",
        "data": {"keys.json": base64.b64encode(json.dumps(spec.keys, sort_keys=True).encode()).decode()},
    }


def _quantity_cpu(cores: float) -> str:
    return f"{round(cores * 1000)}m"


def _quantity_memory(gib: float) -> str:
    return f"{round(gib * 1024)}Mi"


def resources(spec: SlotSpec) -> dict[str, Any]:
    r = spec.config.resources
    return {
        "requests": {"cpu": _quantity_cpu(r.cpu_cores), "memory": _quantity_memory(r.memory_gb)},
        "limits": {
            "cpu": _quantity_cpu(r.cpu_limit or r.cpu_cores),
            "memory": _quantity_memory(r.memory_limit_gb or r.memory_gb),
        },
    }


def _server_args(spec: SlotSpec) -> list[str]:
    args = ["--bundle", BUNDLE_DIR, "--host", "0.0.0.0", "--port", str(PORT)]
    args += ["--settings", f"{CONFIG_DIR}/settings.json", "--deployment-id", spec.name]
    if auth_on(spec):
        args += ["--keys-file", f"{KEYS_DIR}/keys.json"]
    if spec.config.serving.capture.enabled:
        args += ["--capture-dir", CAPTURE_DIR]
    return args


def _volumes(spec: SlotSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {"name": "settings", "configMap": {"name": f"{spec.name}-settings"}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "settings", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if auth_on(spec):
        # `optional: false` said outright: it is the default, but `podman kube play` dereferences
        # the field and crashes without it.
        secret = {"secretName": f"{spec.name}-keys", "defaultMode": 0o400, "optional": False}
        volumes.append({"name": "keys", "secret": secret})
        mounts.append({"name": "keys", "mountPath": KEYS_DIR, "readOnly": True})
    if spec.config.serving.capture.enabled:
        volumes.append({"name": "capture", "emptyDir": {}})
        mounts.append({"name": "capture", "mountPath": CAPTURE_DIR})
    return volumes, mounts


def _probe(initial_delay_s: int, period_s: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/", "port": "http"},
        "initialDelaySeconds": initial_delay_s,
        "periodSeconds": period_s,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def config_hash(spec: SlotSpec) -> str:
    """Changes when the settings or key hashes change, so the pods restart and read them."""
    text = settings_json(spec) + json.dumps(spec.keys, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def deployment(spec: SlotSpec) -> dict[str, Any]:
    volumes, mounts = _volumes(spec)
    startup_failures = max(1, int(spec.config.health_timeout_s // 2))
    container = {
        "name": "server",
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "shipyard.serving"],
        "args": _server_args(spec),
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "resources": resources(spec),
        "startupProbe": _probe(0, 2, startup_failures),
        "readinessProbe": _probe(0, 5, 3),
        "livenessProbe": _probe(0, 10, 3),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if spec.config.kubernetes.image_pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": spec.config.kubernetes.image_pull_secret}]
    body: dict[str, Any] = {
        "selector": {"matchLabels": selector(spec.endpoint, spec.slot)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {
            "metadata": {
                "labels": labels(spec),
                "annotations": {"ai.shipyard/config-hash": config_hash(spec)},
            },
            "spec": pod_spec,
        },
    }
    if not spec.config.autoscale.enabled:
        # With an HPA the replica count is the HPA's: applying one here would fight it.
        body["replicas"] = spec.config.autoscale.replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(spec), "spec": body}


def service(spec: SlotSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(spec),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(spec.endpoint, spec.slot),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def autoscaler(spec: SlotSpec) -> dict[str, Any]:
    a = spec.config.autoscale
    target = {"type": "Utilization", "averageUtilization": a.target_cpu_percent}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(spec),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicas": a.min_replicas,
            "maxReplicas": a.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}],
        },
    }


def disruption_budget(spec: SlotSpec) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(spec),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(spec.endpoint, spec.slot)}},
    }
