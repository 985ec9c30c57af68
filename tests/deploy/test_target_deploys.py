"""`shipyard deploy` on the other targets, end to end: a container deployment behind the
endpoint's router (real podman, real nginx), and Kubernetes manifests rendered for a model
(validated against the official schemas; no cluster is reachable here, so nothing is applied)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import kubernetes_validate
import numpy as np
import pytest
import yaml
from bundles import SEED
from deploy_support import BASE, bundle_at, config, ensure_base_image, make_ws
from tools import require_tool

from shipyard.deploy.endpoints import delete_endpoint, list_endpoints, run_smoke_test, start_deployment
from shipyard.deploy.targets.kubernetes import deploy_kubernetes
from shipyard.images import get_image

pytestmark = pytest.mark.integration


def _container_exists(container_id: str) -> bool:
    return subprocess.run(["podman", "container", "exists", container_id]).returncode == 0


def test_container_deployment_serves_behind_the_endpoint_and_is_removed_with_it(tmp_path: Path) -> None:
    ensure_base_image()
    require_tool("nginx", "nginx")
    ws = make_ws(tmp_path / "ws")
    bundle = bundle_at(tmp_path / "b1", "1")
    cfg = config(target="container", image={"base": BASE, "builder": "podman"}, restart="no")
    dep = run_smoke_test(ws, start_deployment(ws, bundle, cfg).id, SEED, 60)
    try:
        assert dep.target == "container" and dep.container_id and dep.state == "active"
        assert _container_exists(dep.container_id)
        image = get_image(ws, dep.image_id)
        assert image.bundle_id == bundle.id and image.tag.startswith("shipyard/diabetes-ridge:1-")
        # Through the endpoint's stable URL (nginx) to the container, with the model's answers.
        endpoint = list_endpoints(ws)[0]
        assert endpoint["url"] != dep.url and endpoint["traffic"] == {dep.slot: 100}
        r = httpx.post(f"{endpoint['url']}/score", json=SEED, timeout=10)
        assert r.status_code == 200, r.text
        import joblib

        model = joblib.load(next(Path(bundle.path).glob("model/*/*/model.pkl")))
        assert r.json()["result"] == pytest.approx(model.predict(np.array(SEED["data"])).tolist())
        # A second deployment of the same bundle reuses the image (no new build).
        again = run_smoke_test(ws, start_deployment(ws, bundle, cfg).id, SEED, 60)
        assert again.image_id == dep.image_id and again.container_id != dep.container_id
        assert not _container_exists(dep.container_id)  # the one it replaced is gone
    finally:
        delete_endpoint(ws, "ep")
    assert not _container_exists(again.container_id)


def test_kubernetes_render_for_a_model_validates_and_holds_only_key_hashes(tmp_path: Path) -> None:
    ws = make_ws(tmp_path / "ws")
    bundle = bundle_at(tmp_path / "b1", "7")
    cfg = config(
        name="prod",
        target="kubernetes",
        serving={"auth": True},
        autoscale={"enabled": True, "min_replicas": 2, "max_replicas": 5},
        image={"registry": "registry.example.com/team"},
        ttl="24h",
    )
    out = tmp_path / "k8s"
    result = deploy_kubernetes(ws, bundle, cfg, out_dir=out)
    assert result["applied"] is False and set(result["new_keys"]) == {"primary", "secondary"}
    assert result["image"].startswith("registry.example.com/team/diabetes-ridge:7-")
    objects = [yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.yaml"))]
    kinds = sorted(o["kind"] for o in objects)
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Secret"} <= set(kinds)
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30", strict=True)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == result["image"]
    secret_text = json.dumps(next(o for o in objects if o["kind"] == "Secret"))
    text = "".join(p.read_text() for p in out.rglob("*.yaml"))
    for key in result["new_keys"].values():
        assert key not in secret_text and key not in text  # hashes only
    assert (out / "chart" / "Chart.yaml").is_file()
