"""`shipyard images delete` and `images prune` with real podman: a tiny image imported from a
tarball (no base image, no build) stands for a scoring image; its record is what `package --image`
writes. An image a live deployment runs is never deleted."""

from __future__ import annotations

import io
import subprocess
import tarfile
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from tools import require_tool

from shipyard.config.models import WorkspaceSettings
from shipyard.images import list_images
from shipyard.store import utcnow
from shipyard.store.models import DeploymentRow, ImageRow
from shipyard.workspace import Workspace

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path: Path):
    workspace = Workspace.get_or_create(WorkspaceSettings(root=str(tmp_path / "ws")))
    yield workspace
    workspace.store.dispose()


@pytest.fixture
def tiny_tag():
    """A one-file image in podman's store under a unique shipyard/ tag; removed afterwards."""
    podman = require_tool("podman", "podman")
    tag = f"localhost/shipyard/removetest-{uuid.uuid4().hex[:8]}:1-abc"
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    subprocess.run([podman, "import", "-", tag], input=data.getvalue(), capture_output=True, check=True)
    yield tag
    subprocess.run([podman, "rmi", "--force", tag], capture_output=True)


def _in_podman(tag: str) -> bool:
    return subprocess.run(["podman", "image", "exists", tag]).returncode == 0


def _image(ws: Workspace, tag: str, version: str, age_s: int, model: str = "m") -> str:
    image_id = uuid.uuid4().hex
    with ws.store.session() as s:
        s.add(
            ImageRow(
                id=image_id, tag=tag, builder="podman", bundle_id="b" * 32, model_name=model,
                model_version=version, base_image="scratch", created_at=utcnow() - timedelta(seconds=age_s),
            )
        )  # fmt: skip
    return image_id


def _container_deployment(ws: Workspace, image_id: str, state: str = "active") -> str:
    dep_id, now = uuid.uuid4().hex, utcnow()
    with ws.store.session() as s:
        s.add(
            DeploymentRow(
                id=dep_id, endpoint="boxed", target="container", model_name="m", model_version="1",
                bundle_id="b" * 32, state=state, smoke_detail={}, image_id=image_id,
                created_at=now, updated_at=now,
            )
        )  # fmt: skip
    return dep_id


def test_delete_refuses_an_image_in_use_then_removes_record_and_podman_tag(ws, tiny_tag, cli) -> None:
    image_id = _image(ws, tiny_tag, "1", 0)
    dep_id = _container_deployment(ws, image_id)

    refused = cli("images", "delete", image_id[:12], "--workspace", ws.root)
    assert refused.code == 1
    assert f"in use by deployment {dep_id[:12]} of endpoint boxed (active)" in refused.err
    assert "Traceback" not in refused.err and len(refused.err.strip().splitlines()) == 1
    assert _in_podman(tiny_tag) and [i.id for i in list_images(ws)] == [image_id]

    with ws.store.session() as s:
        s.get(DeploymentRow, dep_id).state = "deleted"
    done = cli("images", "delete", image_id[:12], "--workspace", ws.root, "--output", "json")
    assert done.code == 0, done.err
    assert done.json()["actions"] == ["removed record", f"removed {tiny_tag} from podman"]
    assert not _in_podman(tiny_tag) and list_images(ws) == []

    again = cli("images", "delete", image_id[:12], "--workspace", ws.root)
    assert again.code == 1 and "no image" in again.err


def test_prune_keeps_the_newest_and_images_in_use(ws, tiny_tag, cli) -> None:
    newest = _image(ws, "localhost/shipyard/m:4-aaa", "4", 10)
    in_use = _image(ws, "localhost/shipyard/m:3-bbb", "3", 20)
    old = _image(ws, tiny_tag, "2", 30)
    other_model = _image(ws, "localhost/shipyard/n:1-ccc", "1", 40, model="n")
    _container_deployment(ws, in_use, state="healthy")
    base = ["images", "prune", "--keep", "1", "--workspace", ws.root, "--output", "json"]

    planned = cli(*base, "--dry-run")
    assert planned.code == 0, planned.err
    assert [(r["id"], r["status"]) for r in planned.json()] == [(in_use, "kept"), (old, "would delete")]
    assert _in_podman(tiny_tag) and len(list_images(ws)) == 4

    pruned = cli(*base)
    assert [(r["id"], r["status"]) for r in pruned.json()] == [(in_use, "kept"), (old, "deleted")]
    assert not _in_podman(tiny_tag)
    assert {i.id for i in list_images(ws)} == {newest, in_use, other_model}

    text = cli("images", "prune", "--keep", "5", "--workspace", ws.root)
    assert text.code == 0 and "nothing to prune" in text.out
    bad = cli("images", "prune", "--keep", "-1", "--workspace", ws.root)
    assert bad.code == 2 and "Traceback" not in bad.err
