"""Scoring images built with real podman from a local Debian base image (no registry).

The base image comes from scripts/build-base-image.sh (debootstrap once, then cached); the image
is built once per module and the tests read it back with `podman image inspect`.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
from bundles import make_bundle
from deploy_support import ensure_base_image
from sklearn.linear_model import Ridge
from tools import require_tool

from shipyard.config.models import WorkspaceSettings
from shipyard.config.targets import ImageConfig
from shipyard.errors import ShipyardError
from shipyard.images import build_image, get_image, list_images
from shipyard.images.builders import get_builder
from shipyard.workspace import Workspace

pytestmark = pytest.mark.integration
BASE = "localhost/shipyard-base:bookworm"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = ensure_base_image()
    root = tmp_path_factory.mktemp("images")
    ws = Workspace.get_or_create(WorkspaceSettings(root=str(root / "ws")))
    bundle, model = make_bundle(root / "bundle")
    info = build_image(ws, bundle, ImageConfig(base=base, builder="podman"))
    return ws, bundle, model, info, root


def _inspect(tag: str) -> dict:
    return json.loads(
        subprocess.run(["podman", "image", "inspect", tag], capture_output=True, text=True, check=True).stdout
    )[0]


def test_image_has_labels_user_healthcheck_and_port(built) -> None:
    _ws, _bundle, _model, info, _root = built
    raw = _inspect(info.tag)
    labels = raw["Config"]["Labels"]
    assert labels["ai.shipyard.model.name"] == "diabetes-ridge"
    assert labels["ai.shipyard.model.version"] == "3"
    assert labels["ai.shipyard.bundle.hash"].startswith(info.tag.rsplit("-", 1)[1])
    assert labels["org.opencontainers.image.version"] == "3"
    assert raw["Config"]["User"] == "10001:10001"
    assert "8080/tcp" in raw["Config"]["ExposedPorts"]
    health = raw.get("Healthcheck") or raw["Config"].get("Healthcheck")
    assert health["Test"][:3] == ["CMD", "python", "-c"]
    assert info.size_bytes and info.size_bytes == raw["Size"]


def test_container_runs_as_non_root_without_pip_or_control_plane(built) -> None:
    _ws, _bundle, _model, info, _root = built
    script = (
        "import os, importlib.util as u; print(os.getuid());"
        "print([m for m in ('pip', 'mlflow', 'sqlalchemy', 'sklearn', 'shipyard.serving') if u.find_spec(m)])"
    )
    out = subprocess.run(
        ["podman", "run", "--rm", "--network", "none", info.tag, "python", "-c", script],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    assert out[0] == "10001"
    assert out[1] == "['sklearn', 'shipyard.serving']"


def test_dockerfile_and_image_json_are_written_next_to_the_bundle(built) -> None:
    ws, bundle, _model, info, _root = built
    dockerfile = (bundle / "Dockerfile").read_text()
    assert dockerfile == (Path(info.context_dir) / "Dockerfile").read_text()
    assert "HEALTHCHECK" in dockerfile and f"FROM {BASE}" in dockerfile
    record = json.loads((bundle / "image.json").read_text())
    assert record["tag"] == info.tag and record["digest"] == info.digest
    assert get_image(ws, info.tag).id == info.id == get_image(ws, info.id).id
    assert [i.id for i in list_images(ws)] == [info.id]


def test_model_only_change_reuses_the_dependency_layers(built) -> None:
    ws, _bundle, _model, info, root = built
    bundle2, _ = make_bundle(root / "bundle2")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 10))
    joblib.dump(
        Ridge(alpha=5.0).fit(x, x.sum(axis=1)), bundle2 / "model" / "diabetes-ridge" / "3" / "model.pkl"
    )
    started = time.monotonic()
    info2 = build_image(ws, bundle2, ImageConfig(base=BASE, builder="podman"))
    seconds = time.monotonic() - started
    assert info2.tag != info.tag
    # venv, env, requirements lock and the dependency install come from the cache. (The runtime
    # layer is rebuilt too when Shipyard's own source changed between the two builds.)
    assert info2.cached_steps is not None and info2.cached_steps >= 4
    first, second = _inspect(info.tag)["RootFS"]["Layers"], _inspect(info2.tag)["RootFS"]["Layers"]
    assert len(first) == len(second) == 7  # base, venv, lock, deps, runtime lock, runtime, bundle
    assert first[:4] == second[:4]  # base .. dependency layer: reused as they are
    assert first[-1] != second[-1]  # the bundle layer holds the new model
    assert seconds < 30, f"a model-only rebuild took {seconds:.1f} s"


def test_failed_build_raises_with_log_lines_and_keeps_earlier_images(built) -> None:
    ws, bundle, _model, _info, _root = built
    before = [i.id for i in list_images(ws)]
    broken = ImageConfig(base="localhost/shipyard-no-such-base:1", builder="podman")
    with pytest.raises(
        ShipyardError, match=r"(?s)podman build of shipyard/diabetes-ridge.* failed.*last lines.*"
    ):
        build_image(ws, bundle, broken)
    assert [i.id for i in list_images(ws)] == before


def test_named_builder_that_is_missing_names_its_package(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ShipyardError, match="install the Debian package 'buildah'"):
        get_builder("buildah")


def test_buildah_builds_an_image_that_podman_runs(built) -> None:
    """The buildah builder: same Dockerfile and context, an image in the store podman runs from."""
    require_tool("buildah", "buildah")
    ws, bundle, _model, podman_info, _root = built
    info = build_image(ws, bundle, ImageConfig(base=BASE, builder="buildah"))
    assert info.builder == "buildah" and info.tag == podman_info.tag  # the same bundle, the same tag
    labels = _inspect(info.tag)["Config"]["Labels"]
    assert labels["ai.shipyard.model.version"] == "3"
    out = subprocess.run(
        ["podman", "run", "--rm", "--network", "none", info.tag, "python", "-c", "import shipyard.serving"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
