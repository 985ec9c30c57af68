"""Write an endpoint slot's manifests to a folder (one YAML file per object) plus a Helm chart.

A folder of plain files is what reviewers, `kubectl apply -f` and GitOps tools take; `shipyard`
applies the same files (load_manifests) so what was reviewed is what runs. Rendering again into
the same folder replaces the files Shipyard wrote before (an HPA dropped from the config must not
linger) and leaves any other file alone.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from shipyard.config.models import DeploymentConfig
from shipyard.errors import NotFoundError
from shipyard.kube.gateway import http_route
from shipyard.kube.helm import write_chart
from shipyard.kube.manifests import (
    SlotSpec,
    auth_on,
    autoscaler,
    config_map,
    deployment,
    disruption_budget,
    keys_secret,
    service,
)
from shipyard.kube.reaper import reaper_objects
from shipyard.kube.yamlio import dump, file_name, load, order_key

CHART_DIR = "chart"


def _is_ours(path: Path) -> bool:
    try:
        docs = load(path)
    except Exception:  # noqa: BLE001 - not YAML we wrote: leave it alone
        return False
    return bool(docs) and all(
        d.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/managed-by") == "shipyard"
        for d in docs
    )


def slot_objects(spec: SlotSpec) -> list[dict[str, Any]]:
    """Every object of one slot, in the order they are applied."""
    objects = [config_map(spec)]
    if auth_on(spec):
        objects.append(keys_secret(spec))
    objects += [deployment(spec), service(spec), disruption_budget(spec)]
    if spec.config.autoscale.enabled:
        objects.append(autoscaler(spec))
    if spec.expires_at is not None:
        objects += reaper_objects(spec)
    return objects


def render_objects(
    spec: SlotSpec,
    traffic: dict[str, int] | None = None,
    mirror: tuple[str, int] | None = None,
) -> list[dict[str, Any]]:
    """The slot's objects and, with `traffic`, the endpoint's HTTPRoute, in apply order."""
    objects = slot_objects(spec)
    if traffic is not None:
        objects.append(http_route(spec.endpoint, spec.config, traffic, mirror))
    return sorted(objects, key=order_key)


def render(
    endpoint: str,
    slot: str,
    model_name: str,
    model_version: str,
    image: str,
    config: DeploymentConfig,
    out_dir: Path,
    *,
    keys: dict[str, str] | None = None,
    expires_at: datetime | None = None,
    traffic: dict[str, int] | None = None,
    mirror: tuple[str, int] | None = None,
    chart: bool = True,
) -> list[Path]:
    """Write one YAML file per object into `out_dir` (and the chart under out_dir/chart).

    `keys` are the endpoint's key hashes (slot → SHA-256 hex); `traffic` (slot → percent, summing
    to 100) adds the HTTPRoute; `mirror` is (slot, percent). Returns the manifest files written.
    """
    spec = SlotSpec(
        endpoint, slot, model_name, str(model_version), image, config, dict(keys or {}), expires_at
    )
    objects = render_objects(spec, traffic, mirror)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.yaml"):
        if _is_ours(old):
            old.unlink()
    paths = []
    for obj in objects:
        path = out_dir / file_name(obj)
        path.write_text(dump(obj))
        paths.append(path)
    if chart:
        chart_dir = out_dir / CHART_DIR
        if chart_dir.exists() and (chart_dir / "Chart.yaml").exists():
            shutil.rmtree(chart_dir)
        write_chart(spec, objects, chart_dir)
    return paths


def load_manifests(out_dir: Path) -> list[dict[str, Any]]:
    """The objects rendered into `out_dir`, in apply order (the chart folder is not read)."""
    files = sorted(out_dir.glob("*.yaml"))
    if not files:
        raise NotFoundError(f"no manifests in {out_dir}: run the render step first")
    objects = [doc for path in files for doc in load(path)]
    return sorted(objects, key=order_key)
