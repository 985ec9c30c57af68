"""The rendered manifests run: `podman kube play` starts the ConfigMap, Secret and Deployment that
`shipyard deploy --target kubernetes --render` writes (deploy_kubernetes, the path the CLI takes),
from a scoring image built by images/ on the local base image, and the pod answers /score with
the endpoint's key (200, the model's predictions) and 401 without.

podman (4.3 here) runs a Deployment as a pod and reads ConfigMaps from the same file. A Secret it
keeps in its own secret store and mounts its `data` without base64-decoding it (a Secret document
in the played file is stored that way too, so the server would read base64 text): the test
creates the secret from the rendered Secret with its data decoded, as docs/kubernetes.md tells
users to, and plays every other rendered file as written. The pod is reached at its address on
podman's kube network.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import joblib
import kubernetes_validate
import numpy as np
import pytest
import yaml
from bundles import SEED
from deploy_support import BASE, bundle_at, ensure_base_image, make_ws

from shipyard.config.models import DeploymentConfig
from shipyard.config.targets import ImageConfig
from shipyard.deploy.targets.kubernetes import deploy_kubernetes
from shipyard.images import build_image

pytestmark = pytest.mark.integration


def podman(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 or not check, f"podman {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def podman_secret(rendered: dict, folder: Path) -> Path:
    """The rendered Secret as podman's secret store wants it: `data` decoded."""
    secret = dict(rendered, data={k: base64.b64decode(v).decode() for k, v in rendered["data"].items()})
    path = folder / "podman-secret.json"
    path.write_text(json.dumps(secret))
    return path


def pod_address(pod: str) -> str:
    infra = podman("pod", "inspect", pod, "--format", "{{.InfraContainerID}}").strip()
    networks = json.loads(podman("inspect", infra, "--format", "{{json .NetworkSettings.Networks}}"))
    (address,) = {n["IPAddress"] for n in networks.values() if n.get("IPAddress")}
    return address


def wait_healthy(client: httpx.Client, url: str, pod: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if client.get(url + "/").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    logs = podman("pod", "logs", pod, check=False)
    pytest.fail(f"the pod did not answer GET / within {timeout_s:g}s; its log:\n{logs[-3000:]}")


def test_rendered_manifests_run_under_podman_kube_play_and_score_with_the_key(tmp_path: Path) -> None:
    ensure_base_image()
    ws = make_ws(tmp_path / "ws")
    bundle = bundle_at(tmp_path / "bundle", "41")
    endpoint = f"kplay-{uuid.uuid4().hex[:8]}"
    cfg = DeploymentConfig.model_validate(
        {
            "name": endpoint,
            "target": "kubernetes",
            "health_timeout_s": 120,
            "resources": {"cpu": 0.5, "memory": 0.5},
            "image": {"base": BASE, "builder": "podman"},
        }
    )
    image = build_image(ws, bundle, ImageConfig(base=BASE, builder="podman")).tag
    out = tmp_path / "k8s"
    result = deploy_kubernetes(ws, bundle, cfg, out_dir=out)
    assert result["image"] == image  # the Deployment runs the image images/ built for the bundle
    key = result["new_keys"]["primary"]
    files = sorted(out.glob("*.yaml"))
    objects = {o["kind"]: o for o in (yaml.safe_load(p.read_text()) for p in files)}
    assert set(objects) == {"ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget"}
    for obj in objects.values():
        kubernetes_validate.validate(obj, "1.30", strict=True)

    secret_name = objects["Secret"]["metadata"]["name"]
    played = tmp_path / "played.yaml"
    played.write_text("---\n".join(p.read_text() for p in files if not p.name.startswith("secret-")))
    podman("secret", "create", secret_name, str(podman_secret(objects["Secret"], tmp_path)))
    try:
        output = podman("kube", "play", str(played))
        pod = output.split("Pod:\n", 1)[1].split()[0]
        url = f"http://{pod_address(pod)}:8080"
        with httpx.Client(trust_env=False, timeout=10) as client:
            wait_healthy(client, url, pod)
            denied = client.post(url + "/score", json=SEED)
            assert denied.status_code == 401, denied.text
            scored = client.post(url + "/score", json=SEED, headers={"Authorization": f"Bearer {key}"})
            assert scored.status_code == 200, scored.text
            keyed = client.get(url + "/", headers={"Authorization": f"Bearer {key}"}).json()
        model = joblib.load(next(Path(bundle.path).glob("model/*/*/model.pkl")))
        assert scored.json()["result"] == pytest.approx(model.predict(np.array(SEED["data"])).tolist())
        assert keyed["deployment_id"] == f"{endpoint}-blue"  # the Deployment's --deployment-id
        # The pod's security context held: uid 10001, read-only root filesystem, settings mounted.
        names = podman("ps", "--filter", f"pod={pod}", "--format", "{{.Names}}").split()
        (server,) = [n for n in names if not n.endswith("-infra")]
        assert podman("exec", server, "id", "-u").strip() == "10001"
        touched = subprocess.run(
            ["podman", "exec", server, "touch", "/app/x"], capture_output=True, text=True
        )
        assert touched.returncode != 0 and "Read-only file system" in touched.stderr
    finally:
        podman("kube", "down", str(played), check=False)
        podman("secret", "rm", secret_name, check=False)
        podman("rmi", image, check=False)
