"""The same objects as a Helm chart, for teams that deploy with Helm or a GitOps tool built on it.

The templates are the rendered manifests with four places opened up as values: the image, the
replica count (or the HPA's bounds when autoscaling) and the container resources. With the default
values.yaml the chart renders to exactly the plain manifests, which the tests check.

Templating uses only `{{ .Values.x }}`, `quote`, `toYaml | nindent` and `if`/`end`, so the chart
needs no helpers and renders on any Helm 3.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from shipyard.kube.manifests import SlotSpec, autoscaler, resources
from shipyard.kube.yamlio import dump, file_name

_IMAGE, _REPLICAS, _RESOURCES = "__SHIPYARD_IMAGE__", "__SHIPYARD_REPLICAS__", "__SHIPYARD_RESOURCES__"
_HPA = {
    "__SHIPYARD_MIN__": "minReplicas",
    "__SHIPYARD_MAX__": "maxReplicas",
    "__SHIPYARD_CPU__": "targetCPUUtilizationPercentage",
}


def chart_values(spec: SlotSpec) -> dict[str, Any]:
    a = spec.config.autoscale
    return {
        "image": spec.image,
        "replicas": a.replicas,
        "autoscale": {
            "enabled": a.enabled,
            "minReplicas": a.min_replicas,
            "maxReplicas": a.max_replicas,
            "targetCPUUtilizationPercentage": a.target_cpu_percent,
        },
        "resources": resources(spec),
    }


def _deployment_template(obj: dict[str, Any]) -> str:
    obj = copy.deepcopy(obj)
    obj["spec"]["replicas"] = _REPLICAS
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["image"], container["resources"] = _IMAGE, _RESOURCES
    text = dump(obj)
    text = text.replace(f"image: {_IMAGE}", "image: {{ .Values.image | quote }}")
    text = text.replace(
        f"  replicas: {_REPLICAS}\n",
        "  {{- if not .Values.autoscale.enabled }}\n  replicas: {{ .Values.replicas }}\n  {{- end }}\n",
    )
    return re.sub(
        rf"^( *)resources: {_RESOURCES}$",
        lambda m: (
            f"{m.group(1)}resources:\n{m.group(1)}  {{{{- toYaml .Values.resources | nindent "
            f"{len(m.group(1)) + 2} }}}}"
        ),
        text,
        flags=re.M,
    )


def _autoscaler_template(spec: SlotSpec) -> str:
    obj = autoscaler(spec)
    obj["spec"]["minReplicas"], obj["spec"]["maxReplicas"] = "__SHIPYARD_MIN__", "__SHIPYARD_MAX__"
    obj["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] = "__SHIPYARD_CPU__"
    text = dump(obj)
    for sentinel, key in _HPA.items():
        text = text.replace(sentinel, f"{{{{ .Values.autoscale.{key} }}}}")
    return "{{- if .Values.autoscale.enabled }}\n" + text + "{{- end }}\n"


def write_chart(spec: SlotSpec, objects: list[dict[str, Any]], chart_dir: Path) -> list[Path]:
    """Chart.yaml, values.yaml and one template per object; returns the files written."""
    templates = chart_dir / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    chart = {
        "apiVersion": "v2",
        "name": spec.name,
        "description": f"Shipyard endpoint {spec.endpoint}, slot {spec.slot}: "
        f"{spec.model_name} v{spec.model_version}",
        "type": "application",
        "version": "0.1.0",
        "appVersion": str(spec.model_version),
    }
    files = {chart_dir / "Chart.yaml": dump(chart), chart_dir / "values.yaml": dump(chart_values(spec))}
    for obj in objects:
        if obj["kind"] == "HorizontalPodAutoscaler":
            continue
        text = _deployment_template(obj) if obj["kind"] == "Deployment" else dump(obj)
        files[templates / file_name(obj)] = text
    files[templates / file_name(autoscaler(spec))] = _autoscaler_template(spec)
    for path, text in files.items():
        path.write_text(text)
    return sorted(files)
