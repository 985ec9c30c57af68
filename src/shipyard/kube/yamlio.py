"""YAML in and out for manifests: one place that fixes the format, so output is byte-identical.

Keys are sorted and lines are never folded; objects are ordered so that what a resource refers to
(ConfigMap, Secret, ServiceAccount, Role) is applied before the resource itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

APPLY_ORDER = (
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "CronJob",
    "HTTPRoute",
)


def dump(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, width=10_000, allow_unicode=True)


def file_name(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def order_key(obj: dict[str, Any]) -> tuple[int, str]:
    kind = obj["kind"]
    rank = APPLY_ORDER.index(kind) if kind in APPLY_ORDER else len(APPLY_ORDER)
    return rank, obj["metadata"]["name"]


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
