"""Rendered Kubernetes manifests: values, determinism, and validity against the official schemas.

Built-in kinds are checked with kubernetes-validate (strict: unknown fields fail) for Kubernetes
1.30; the HTTPRoute against the Gateway API v1 HTTPRoute schema vendored in tests/kube/schemas, made
strict the same way. The Helm chart goes through `helm template` when helm is installed, else
through a small substitution of the only template constructs it uses; either way it must equal
the plain manifests for the default values.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from shipyard.config.models import DeploymentConfig, ServingConfig
from shipyard.errors import ConfigError, UsageError
from shipyard.kube import load_manifests, render
from shipyard.kube.gateway import http_route

K8S_VERSION = "1.30"
SCHEMA = Path(__file__).resolve().parent / "schemas" / "httproute-v1.schema.json"
HASH = "ab" * 32
EXPIRY = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)


def config(**extra: Any) -> DeploymentConfig:
    data = {"name": "diab", "target": "kubernetes", "kubernetes": {"namespace": "ml", "gateway": "infra/web"}}
    return DeploymentConfig.model_validate({**data, **extra})


def do_render(out: Path, cfg: DeploymentConfig | None = None, **kwargs: Any) -> list[Path]:
    kwargs.setdefault("keys", {"primary": HASH, "secondary": "cd" * 32})
    return render("diab", "blue", "diabetes", "3", "shipyard/diabetes:3", cfg or config(), out, **kwargs)


def by_kind(out: Path) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in load_manifests(out)}


def strict(schema: Any) -> Any:
    """Unknown fields fail, as kubernetes-validate's strict mode does for built-in kinds."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(v) for v in schema]
    return schema


@pytest.fixture(scope="module")
def route_schema() -> dict[str, Any]:
    return strict(json.loads(SCHEMA.read_text()))


def validate(obj: dict[str, Any], route_schema: dict[str, Any]) -> None:
    if obj["kind"] == "HTTPRoute":
        jsonschema.Draft7Validator(route_schema).validate(obj)
    else:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_every_manifest_validates_against_the_official_schemas(tmp_path: Path, route_schema) -> None:
    cfg = config(
        autoscale={"enabled": True, "min_replicas": 2, "max_replicas": 5, "target_cpu_percent": 60},
        serving={"capture": {"enabled": True}},
    )
    paths = do_render(
        tmp_path, cfg, expires_at=EXPIRY, traffic={"blue": 90, "green": 10}, mirror=("canary", 100)
    )
    kinds = [yaml.safe_load(p.read_text())["kind"] for p in paths]
    assert kinds == [
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
    ]
    for obj in load_manifests(tmp_path):
        validate(obj, route_schema)


def test_validation_is_able_to_fail(route_schema) -> None:
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "two", "selector": {}, "template": {}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)
    route = http_route("diab", config(), {"blue": 100})
    route["spec"]["rules"][0]["backendRefs"][0]["wieght"] = 5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(route_schema).validate(route)


def test_deployment_carries_resources_probes_security_and_labels(tmp_path: Path) -> None:
    cfg = config(
        resources={"cpu": 0.5, "memory": 2, "cpu_limit": 2},
        autoscale={"replicas": 3},
        kubernetes={"namespace": "ml", "image_pull_secret": "pull"},
    )
    do_render(tmp_path, cfg)
    objs = by_kind(tmp_path)
    dep = objs["Deployment"]
    assert dep["metadata"]["namespace"] == "ml" and dep["spec"]["replicas"] == 3
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "shipyard/diabetes:3"
    assert c["resources"] == {
        "requests": {"cpu": "500m", "memory": "2048Mi"},
        "limits": {"cpu": "2000m", "memory": "2048Mi"},
    }
    assert c["readinessProbe"]["httpGet"] == {"path": "/", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/", "port": "http"}
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert (
        pod["securityContext"]["runAsNonRoot"] is True
        and c["securityContext"]["allowPrivilegeEscalation"] is False
    )
    assert pod["imagePullSecrets"] == [{"name": "pull"}]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels["ai.shipyard/endpoint"] == "diab" and labels["ai.shipyard/slot"] == "blue"
    assert labels["ai.shipyard/model"] == "diabetes" and labels["ai.shipyard/model-version"] == "3"
    assert labels["app.kubernetes.io/managed-by"] == "shipyard"
    assert "--keys-file" in c["args"] and c["args"][c["args"].index("--port") + 1] == "8080"
    assert "HorizontalPodAutoscaler" not in objs and "CronJob" not in objs
    assert objs["Service"]["spec"]["selector"] == {"ai.shipyard/endpoint": "diab", "ai.shipyard/slot": "blue"}


def test_settings_configmap_round_trips_and_secret_holds_only_hashes(tmp_path: Path) -> None:
    cfg = config(serving={"scoringTimeoutMs": 1234, "workers": 2})
    do_render(tmp_path, cfg)
    objs = by_kind(tmp_path)
    settings = ServingConfig.model_validate(json.loads(objs["ConfigMap"]["data"]["settings.json"]))
    assert settings.scoring_timeout_ms == 1234 and settings.workers == 2
    keys_json = base64.b64decode(objs["Secret"]["data"]["keys.json"])
    assert json.loads(keys_json) == {"primary": HASH, "secondary": "cd" * 32}
    with pytest.raises(UsageError, match="SHA-256"):
        do_render(tmp_path / "bad", keys={"primary": "plain-secret-key"})


def test_auth_off_renders_no_secret_and_no_keys_file(tmp_path: Path) -> None:
    do_render(tmp_path, config(serving={"auth": False}))
    objs = by_kind(tmp_path)
    assert "Secret" not in objs
    assert "--keys-file" not in objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]


def test_autoscale_renders_hpa_and_leaves_replicas_to_it(tmp_path: Path) -> None:
    cfg = config(autoscale={"enabled": True, "min_replicas": 2, "max_replicas": 7, "target_cpu_percent": 55})
    do_render(tmp_path, cfg)
    objs = by_kind(tmp_path)
    hpa = objs["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 7)
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {
        "type": "Utilization",
        "averageUtilization": 55,
    }
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "diab-blue",
    }
    assert "replicas" not in objs["Deployment"]["spec"]
    assert objs["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_ttl_adds_expiry_annotation_label_and_reaper(tmp_path: Path) -> None:
    do_render(tmp_path, expires_at=EXPIRY)
    objs = by_kind(tmp_path)
    dep = objs["Deployment"]["metadata"]
    assert dep["annotations"]["ai.shipyard/expires-at"] == "2030-01-02T03:04:00+00:00"
    assert dep["labels"]["ai.shipyard/expires-at"] == str(int(EXPIRY.timestamp()))
    cron = objs["CronJob"]
    assert cron["spec"]["schedule"] == "4 3 2 1 *" and cron["spec"]["timeZone"] == "Etc/UTC"
    job = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    cmd = job["containers"][0]["command"]
    assert cmd[:2] == ["kubectl", "delete"]
    assert cmd[cmd.index("--selector") + 1] == "ai.shipyard/endpoint=diab,ai.shipyard/slot=blue"
    assert job["serviceAccountName"] == "diab-blue-reaper"
    assert job["containers"][0]["image"] == "registry.k8s.io/kubectl:v1.36.4"  # the maintained default
    assert objs["RoleBinding"]["roleRef"]["name"] == objs["Role"]["metadata"]["name"] == "diab-blue-reaper"


def test_reaper_image_is_a_setting(tmp_path: Path) -> None:
    cfg = config(kubernetes={"namespace": "ml", "reaper_image": "mirror.internal/kubectl:v1.35.2"})
    do_render(tmp_path, cfg, expires_at=EXPIRY)
    job = by_kind(tmp_path)["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job["containers"][0]["image"] == "mirror.internal/kubectl:v1.35.2"
    with pytest.raises(ValueError, match="reaper_image"):
        config(kubernetes={"reaper_image": "kubectl with spaces"})


def test_output_is_byte_identical_and_stale_files_go(tmp_path: Path) -> None:
    kwargs = {"expires_at": EXPIRY, "traffic": {"blue": 100}}
    a = {p.name: p.read_bytes() for p in do_render(tmp_path / "a", **kwargs)}
    b = {p.name: p.read_bytes() for p in do_render(tmp_path / "b", **kwargs)}
    assert a == b
    chart_a = sorted(
        (p.relative_to(tmp_path / "a"), p.read_bytes()) for p in (tmp_path / "a/chart").rglob("*.yaml")
    )
    chart_b = sorted(
        (p.relative_to(tmp_path / "b"), p.read_bytes()) for p in (tmp_path / "b/chart").rglob("*.yaml")
    )
    assert chart_a == chart_b
    (tmp_path / "a" / "mine.yaml").write_text("kind: Mine\n")
    do_render(tmp_path / "a")  # no TTL, no route now
    names = {p.name for p in (tmp_path / "a").glob("*.yaml")}
    assert "mine.yaml" in names
    assert not any(n.startswith(("cronjob-", "httproute-", "role-")) for n in names)


def test_route_weights_and_mirror(route_schema) -> None:
    route = http_route("diab", config(), {"green": 25, "blue": 75}, mirror=("shadow", 20))
    (rule,) = route["spec"]["rules"]
    assert [(b["name"], b["weight"], b["port"]) for b in rule["backendRefs"]] == [
        ("diab-blue", 75, 80),
        ("diab-green", 25, 80),
    ]
    assert route["spec"]["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "web", "namespace": "infra"}
    ]
    assert rule["filters"] == [
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"group": "", "kind": "Service", "name": "diab-shadow", "port": 80},
                "percent": 20,
            },
        }
    ]
    full = http_route("diab", config(), {"blue": 100}, mirror=("shadow", 100))
    assert "percent" not in full["spec"]["rules"][0]["filters"][0]["requestMirror"]
    jsonschema.Draft7Validator(route_schema).validate(full)


@pytest.mark.parametrize(
    ("traffic", "mirror", "message"),
    [
        ({"blue": 90, "green": 20}, None, "sum to 100, got 110"),
        ({}, None, "at least one slot"),
        ({"blue": 100.0}, None, "whole percent"),
        ({"Blue": 100}, None, "lower-case"),
        ({"blue": 100}, ("blue", 10), "live traffic"),
        ({"blue": 100}, ("green", 0), "mirror percent"),
    ],
)
def test_bad_traffic_is_rejected_with_a_clear_error(traffic, mirror, message) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        http_route("diab", config(), traffic, mirror)


def test_route_needs_a_gateway() -> None:
    with pytest.raises(ConfigError, match="kubernetes.gateway"):
        http_route("diab", config(kubernetes={"namespace": "ml"}), {"blue": 100})


def test_bad_slot_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="slot name 'Blue Green' is not allowed"):
        render("diab", "Blue Green", "m", "1", "img:1", config(), tmp_path)


def substitute(text: str, values: dict[str, Any], release: str, namespace: str) -> str:
    """The chart's template constructs, evaluated the way Helm does (only those the chart uses):
    helm cannot be installed here (no package, no binary wheel), so this stands in for
    `helm template RELEASE chart --namespace NAMESPACE`; with helm on PATH the test uses helm."""

    def value(path: str) -> Any:
        node: Any = values
        for part in path.split(".")[2:]:  # ".Values.a.b" -> a, b
            node = node[part]
        return node

    def cond(m: re.Match[str]) -> str:
        truth = bool(value(m.group(2)))
        return m.group(3) if truth != bool(m.group(1)) else ""

    text = re.sub(
        r"\n? *\{\{- if (not )?(\.Values[\w.]+) \}\}(.*?)\n? *\{\{- end \}\}", cond, text, flags=re.S
    )

    def to_yaml(m: re.Match[str]) -> str:
        pad = " " * int(m.group(2))
        body = yaml.safe_dump(value(m.group(1)), sort_keys=True).rstrip("\n")
        return "\n" + "\n".join(pad + line for line in body.splitlines())

    text = re.sub(r"\n? *\{\{- toYaml (\.Values[\w.]+) \| nindent (\d+) \}\}", to_yaml, text)
    text = re.sub(r"\{\{ (\.Values[\w.]+) \| quote \}\}", lambda m: json.dumps(value(m.group(1))), text)
    text = re.sub(r"\{\{ (\.Values[\w.]+) \}\}", lambda m: str(value(m.group(1))), text)
    text = text.replace("{{ .Release.Name }}", release).replace("{{ .Release.Namespace }}", namespace)
    assert "{{" not in text, text
    return text


def chart_objects(chart: Path, release: str, namespace: str, values: dict[str, Any] | None = None) -> list:
    """What installing `chart` as `release` into `namespace` creates (helm template when installed)."""
    helm = shutil.which("helm")
    if helm and values is None:
        out = subprocess.run(
            [helm, "template", release, str(chart), "--namespace", namespace],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [d for d in yaml.safe_load_all(out) if d]
    values = values or yaml.safe_load((chart / "values.yaml").read_text())
    return [
        d
        for p in sorted((chart / "templates").glob("*.yaml"))
        for d in yaml.safe_load_all(substitute(p.read_text(), values, release, namespace))
        if d
    ]


def with_release_selectors(obj: dict[str, Any], release: str) -> dict[str, Any]:
    """A plain manifest as the chart has it: selectors also match the release's instance label."""
    obj = json.loads(json.dumps(obj))
    spec = obj.get("spec", {})
    if obj["kind"] == "Service":
        spec["selector"]["app.kubernetes.io/instance"] = release
    elif "matchLabels" in spec.get("selector", {}):
        spec["selector"]["matchLabels"]["app.kubernetes.io/instance"] = release
    if obj["kind"] == "CronJob":
        command = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
        command[command.index("--selector") + 1] += f",app.kubernetes.io/instance={release}"
    return obj


@pytest.mark.parametrize("autoscale", [False, True])
def test_chart_with_default_values_equals_the_manifests(
    tmp_path: Path, autoscale: bool, route_schema
) -> None:
    cfg = config(autoscale={"enabled": autoscale, "replicas": 2})
    do_render(tmp_path, cfg, traffic={"blue": 100}, expires_at=EXPIRY)
    chart = tmp_path / "chart"
    values = yaml.safe_load((chart / "values.yaml").read_text())
    assert values["image"] == "shipyard/diabetes:3" and values["autoscale"]["enabled"] is autoscale
    rendered = chart_objects(chart, "diab-blue", "ml")
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    # Installed as <endpoint>-<slot> into the configured namespace: the plain manifests, their
    # selectors narrowed to the release, and no HTTPRoute (the endpoint's, spanning slots).
    plain = [with_release_selectors(o, "diab-blue") for o in load_manifests(tmp_path)]
    plain = [o for o in plain if o["kind"] != "HTTPRoute"]
    assert sorted(rendered, key=key) == sorted(plain, key=key)
    values["image"], values["replicas"] = "other:9", 4
    values["autoscale"]["enabled"] = False
    other = chart_objects(chart, "diab-blue", "ml", values)
    dep = next(o for o in other if o["kind"] == "Deployment")
    assert (
        dep["spec"]["replicas"] == 4
        and dep["spec"]["template"]["spec"]["containers"][0]["image"] == "other:9"
    )
    assert not any(o["kind"] == "HorizontalPodAutoscaler" for o in other)
    for obj in other:
        validate(obj, route_schema)


def test_two_releases_of_one_chart_share_no_object_and_no_pods(tmp_path: Path, route_schema) -> None:
    cfg = config(autoscale={"enabled": True, "min_replicas": 1, "max_replicas": 3})
    do_render(tmp_path, cfg, traffic={"blue": 100}, expires_at=EXPIRY)
    releases = {
        ("diab-a", "team-a"): chart_objects(tmp_path / "chart", "diab-a", "team-a"),
        ("diab-b", "team-a"): chart_objects(tmp_path / "chart", "diab-b", "team-a"),
        ("diab-a", "team-b"): chart_objects(tmp_path / "chart", "diab-a", "team-b"),
    }
    owned = {
        release: {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects}
        for release, objects in releases.items()
    }
    assert owned[("diab-a", "team-a")] & owned[("diab-b", "team-a")] == set()
    assert owned[("diab-a", "team-a")] & owned[("diab-a", "team-b")] == set()
    assert ("Deployment", "team-a", "diab-b") in owned[("diab-b", "team-a")]
    assert ("Secret", "team-b", "diab-a-keys") in owned[("diab-a", "team-b")]
    for (release, namespace), objects in releases.items():
        kinds = {o["kind"]: o for o in objects}
        pod = kinds["Deployment"]["spec"]["template"]
        assert pod["spec"]["volumes"][0]["configMap"]["name"] == f"{release}-settings"
        assert kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == release
        assert kinds["RoleBinding"]["subjects"][0] == {
            "kind": "ServiceAccount",
            "name": f"{release}-reaper",
            "namespace": namespace,
        }
        reaper = kinds["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        assert reaper["command"][reaper["command"].index("--namespace") + 1] == namespace
        assert kinds["Service"]["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        for obj in objects:
            validate(obj, route_schema)
    # In one namespace, each release's Service picks its own pods only.
    a, b = (releases[(r, "team-a")] for r in ("diab-a", "diab-b"))
    service_a = next(o for o in a if o["kind"] == "Service")["spec"]["selector"]
    pod_b = next(o for o in b if o["kind"] == "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert not service_a.items() <= pod_b.items()
