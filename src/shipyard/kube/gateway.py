"""The endpoint's traffic split on Kubernetes: one Gateway API HTTPRoute with weighted backends.

Blue/green and canary are only weights here: each slot has its own Service (manifests.py), and
the HTTPRoute sends `weight` percent of requests to each. Mirroring copies requests to a slot
whose answers are discarded (Gateway API's RequestMirror filter); a mirrored slot takes no live
traffic, as in Azure ML. The `percent` field of RequestMirror needs Gateway API v1.3 or later;
a 100 % mirror is written without it, so it works on every v1 implementation.
"""

from __future__ import annotations

from typing import Any

from shipyard.config.models import DeploymentConfig
from shipyard.errors import ConfigError, UsageError
from shipyard.kube.manifests import SERVICE_PORT
from shipyard.names import check_name

GATEWAY_API = "gateway.networking.k8s.io/v1"


def check_traffic(traffic: dict[str, int], mirror: tuple[str, int] | None = None) -> None:
    """Weights are whole percents per slot summing to 100; a mirror slot carries no live traffic."""
    if not traffic:
        raise UsageError("traffic: give at least one slot, e.g. {'blue': 100}")
    for slot, weight in traffic.items():
        check_name("Kubernetes slot name", slot, "traffic")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise UsageError(f"traffic for {slot!r}: {weight!r} is not a whole percent from 0 to 100")
    total = sum(traffic.values())
    if total != 100:
        shown = ", ".join(f"{s}={w}" for s, w in sorted(traffic.items()))
        raise UsageError(f"traffic weights must sum to 100, got {total} ({shown})")
    if mirror is not None:
        slot, percent = mirror
        check_name("Kubernetes slot name", slot, "mirror")
        if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
            raise UsageError(f"mirror percent {percent!r}: use a whole percent from 1 to 100")
        if traffic.get(slot, 0) > 0:
            raise UsageError(f"mirror slot {slot!r} has {traffic[slot]}% live traffic: set it to 0 first")


def _parent_ref(gateway: str) -> dict[str, str]:
    """'name' or 'namespace/name' of the Gateway."""
    namespace, _, name = gateway.rpartition("/")
    ref = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": name}
    if namespace:
        ref["namespace"] = namespace
    return ref


def http_route(
    endpoint: str,
    config: DeploymentConfig,
    traffic: dict[str, int],
    mirror: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """The HTTPRoute attaching the endpoint to `kubernetes.gateway` with the given split."""
    check_traffic(traffic, mirror)
    gateway = config.kubernetes.gateway
    if not gateway:
        raise ConfigError(
            "deployment.kubernetes.gateway is not set: name the Gateway (or namespace/name) that "
            "the endpoint's HTTPRoute attaches to"
        )
    rule: dict[str, Any] = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": [
            {
                "group": "",
                "kind": "Service",
                "name": f"{endpoint}-{slot}",
                "port": SERVICE_PORT,
                "weight": weight,
            }
            for slot, weight in sorted(traffic.items())
        ],
    }
    if mirror is not None:
        slot, percent = mirror
        spec: dict[str, Any] = {
            "backendRef": {"group": "", "kind": "Service", "name": f"{endpoint}-{slot}", "port": SERVICE_PORT}
        }
        if percent < 100:
            spec["percent"] = percent
        rule["filters"] = [{"type": "RequestMirror", "requestMirror": spec}]
    return {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": {
            "name": endpoint,
            "namespace": config.kubernetes.namespace,
            "labels": {
                "app.kubernetes.io/name": endpoint,
                "app.kubernetes.io/part-of": "shipyard",
                "app.kubernetes.io/managed-by": "shipyard",
                "ai.shipyard/endpoint": endpoint,
            },
        },
        "spec": {"parentRefs": [_parent_ref(gateway)], "rules": [rule]},
    }
