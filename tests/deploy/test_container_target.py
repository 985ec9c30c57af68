"""The container target with real podman: run the image, score through the published port, and
report a container that crashes in init() with its own log lines."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from bundles import SCORE_PY, SEED, make_bundle
from deploy_support import ensure_base_image

from shipyard.config.models import DeploymentConfig, WorkspaceSettings
from shipyard.config.targets import ImageConfig
from shipyard.deploy.targets import DeploymentSpec, get_target
from shipyard.deploy.targets.container import ContainerTarget
from shipyard.errors import DeploymentError
from shipyard.images import build_image
from shipyard.serving.server.auth import hash_key
from shipyard.workspace import Workspace

pytestmark = pytest.mark.integration
CRASHING_SCORE_PY = SCORE_PY.replace(
    "    global model\n", "    raise RuntimeError('model file is corrupt: boom-42')\n"
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> tuple[Workspace, Path]:
    ensure_base_image()
    root = tmp_path_factory.mktemp("container")
    return Workspace.get_or_create(WorkspaceSettings(root=str(root / "ws"))), root


def _image(ws: Workspace, bundle: Path) -> str:
    return build_image(ws, bundle, ImageConfig(base="localhost/shipyard-base:bookworm", builder="podman")).tag


def _spec(image: str, deployment_id: str, **extra) -> DeploymentSpec:
    config = DeploymentConfig(name="dev", target="container", health_timeout_s=60, restart="no",
                              resources={"cpu": 1, "memory": 1})  # fmt: skip
    return DeploymentSpec(deployment_id=deployment_id, endpoint="dev", config=config, image=image, **extra)


def test_container_serves_predictions_with_auth_and_is_deleted(workspace) -> None:
    ws, root = workspace
    bundle, model = make_bundle(root / "ok")
    keys_dir = root / "keys"
    keys_dir.mkdir()
    (keys_dir / "keys.json").write_text(json.dumps({"primary": hash_key("k-primary")}))
    (keys_dir / "keys.json").chmod(0o644)
    settings = root / "settings.json"
    settings.write_text(json.dumps({"workers": 1}))
    target = get_target("container", "podman")
    handle = target.apply(
        _spec(_image(ws, bundle), "dep-ok-1", keys_file=keys_dir / "keys.json", settings_file=settings)
    )
    try:
        assert handle.url.startswith("http://127.0.0.1:") and handle.container_id
        assert target.status(handle) == "running"
        with httpx.Client(trust_env=False, timeout=10) as client:
            assert client.get(handle.url + "/").json() == {"status": "healthy"}  # details need the key
            keyed = client.get(handle.url + "/", headers={"Authorization": "Bearer k-primary"})
            assert keyed.json()["deployment_id"] == "dep-ok-1"
            denied = client.post(handle.url + "/score", json=SEED)
            assert denied.status_code == 401
            scored = client.post(
                handle.url + "/score", json=SEED, headers={"Authorization": "Bearer k-primary"}
            )
        assert scored.status_code == 200, scored.text
        expected = model.predict(np.array(SEED["data"], dtype=float))
        assert np.allclose(scored.json()["result"], expected)
        assert "/score" in target.logs(handle, 50)  # the access log of the requests above
    finally:
        target.delete(handle)
    assert target.status(handle) == "missing"


def test_crash_in_init_is_reported_with_the_container_log(workspace) -> None:
    ws, root = workspace
    bundle, _ = make_bundle(root / "crash", score_py=CRASHING_SCORE_PY)
    target = ContainerTarget("podman")
    spec = _spec(_image(ws, bundle), "dep-crash-1")
    with pytest.raises(DeploymentError, match=r"(?s)exited with code \d+ before becoming healthy.*boom-42"):
        target.apply(spec)
    # The failed container is removed, not left behind.
    from shipyard.deploy.targets.base import TargetHandle

    assert target.status(TargetHandle("container", "", 0, name="shipyard-dev-dep-crash-1")) == "missing"


def test_run_args_carry_limits_restart_and_mounts_but_no_secrets(tmp_path) -> None:
    target = ContainerTarget("podman")
    config = DeploymentConfig(name="dev", target="container", restart="on-failure",
                              resources={"cpu": 0.5, "memory": 2, "memory_limit_gb": 3})  # fmt: skip
    keys = tmp_path / "k" / "keys.json"
    env = {"API_TOKEN": "s3cret"}
    spec = DeploymentSpec("abc123", "dev", config, image="shipyard/m:1-x", keys_file=keys, env=env)
    args = target.run_args(spec, "shipyard-dev-abc123", tmp_path / "env")
    joined = " ".join(args)
    assert "--cpus 0.5" in joined and "--memory 3072m" in joined and "--restart on-failure" in joined
    assert "--publish 127.0.0.1::8080" in joined
    assert f"--volume {tmp_path / 'k'}:/etc/shipyard/keys:ro" in joined
    assert "--keys-file /etc/shipyard/keys/keys.json" in joined
    assert "s3cret" not in joined and "--env-file" in joined
