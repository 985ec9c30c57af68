"""The same objects as a Helm chart, for teams that deploy with Helm or a GitOps tool built on it.

The templates are the rendered manifests with four places opened up as values: the image, the
replica count (or the HPA's bounds when autoscaling) and the container resources. Names and the
namespace come from the release: every object is named `{{ .Release.Name }}` (+ its suffix), lives
in `{{ .Release.Namespace }}`, and the selectors also match `app.kubernetes.io/instance:
{{ .Release.Name }}`, so two releases of one chart (a second namespace, or a second name in the
same one) never share an object or each other's pods. Installed as `<endpoint>-<slot>` into the
configured namespace with the default values.yaml, the chart renders to the plain manifests plus
that selector label, which the tests check. The endpoint's HTTPRoute spans slots (each slot is its
own release), so it is not part of a slot's chart: apply it from the plain manifests.

Templating uses only `{{ .Values.x }}`, `.Release.Name`/`.Namespace`, `quote`, `toYaml | nindent`
and `if`/`end`, so the chart needs no helpers and renders on any Helm 3.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from shipyard.kube.manifests import INSTANCE, SlotSpec, autoscaler, resources
from shipyard.kube.yamlio import dump, file_name

_IMAGE, _REPLICAS, _RESOURCES = "__SHIPYARD_IMAGE__", "__SHIPYARD_REPLICAS__", "__SHIPYARD_RESOURCES__"
_RELEASE, _NAMESPACE = "__SHIPYARD_RELEASE__", "__SHIPYARD_NAMESPACE__"
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


def _released(value: Any, spec: SlotSpec, key: str = "") -> Any:
    """`value` with the slot's name (and every name derived from it) and namespace as sentinels."""
    if isinstance(value, dict):
        return {k: _released(v, spec, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_released(v, spec, key) for v in value]
    if key == "namespace" and value == spec.namespace:
        return _NAMESPACE
    if isinstance(value, str) and (value == spec.name or value.startswith(f"{spec.name}-")):
        return _RELEASE + value[len(spec.name) :]
    return value


def _release_template(obj: dict[str, Any], spec: SlotSpec) -> dict[str, Any]:
    """The object as one release's: its names and namespace the release's, its selectors and the
    reaper's label selector narrowed to the release's instance label."""
    obj = _released(obj, spec)  # a new tree: the rendered object stays as it was
    body = obj.get("spec", {})
    # A Service's selector is a label map; Deployment and PodDisruptionBudget have matchLabels.
    selector = body.get("selector")
    if selector is not None and obj["kind"] != "Service":
        selector = selector.get("matchLabels")
    if selector is not None:
        selector[INSTANCE] = _RELEASE
    if obj["kind"] == "CronJob":
        command = body["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
        command[command.index("--namespace") + 1] = _NAMESPACE
        at = command.index("--selector") + 1
        command[at] = f"{command[at]},{INSTANCE}={_RELEASE}"
    return obj


def _released_text(text: str) -> str:
    return text.replace(_RELEASE, "{{ .Release.Name }}").replace(_NAMESPACE, "{{ .Release.Namespace }}")


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
    obj = _release_template(autoscaler(spec), spec)
    obj["spec"]["minReplicas"], obj["spec"]["maxReplicas"] = "__SHIPYARD_MIN__", "__SHIPYARD_MAX__"
    obj["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] = "__SHIPYARD_CPU__"
    text = dump(obj)
    for sentinel, key in _HPA.items():
        text = text.replace(sentinel, f"{{{{ .Values.autoscale.{key} }}}}")
    return "{{- if .Values.autoscale.enabled }}\n" + _released_text(text) + "{{- end }}\n"


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
        if obj["kind"] in ("HorizontalPodAutoscaler", "HTTPRoute"):
            continue
        released = _release_template(obj, spec)
        text = _deployment_template(released) if obj["kind"] == "Deployment" else dump(released)
        files[templates / file_name(obj)] = _released_text(text)
    files[templates / file_name(autoscaler(spec))] = _autoscaler_template(spec)
    for path, text in files.items():
        path.write_text(text)
    return sorted(files)
