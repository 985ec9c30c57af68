"""A release on a different runner than the training, on one shared workspace (PostgreSQL + S3).

Two clones of a project made by `shipyard init`, each with its own local cache and host identity,
as two CI runners check out the same commit: clone A runs `shipyard ci run train` (registers v1);
clone B, whose cache is empty, runs `shipyard ci run release --approve --artifact` with the model
artifact of A's run (as a CI system hands it from the train run to the release). B finds v1 in the
shared registry, builds its image, deploys dev to a *remote container* on an SSH host (the real
OpenSSH server on loopback, running podman) where it outlives the job, smoke-tests it through the
published port, promotes to qa and, approved, to prod. Then v2 ships with a scoring script that
breaks under use (it answers the deployment's own smoke request and fails from then on): the CI
smoke test of dev fails, the release's rollback job returns dev to v1 on the SSH host, and qa and
prod never see v2. `ci run` runs the generated file's own commands (tests/ci/test_ci_chain.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from deploy_support import BASE, ensure_base_image
from pg_support import postgres_server  # noqa: F401
from s3_support import s3_server  # noqa: F401
from sshd_support import sshd  # noqa: F401
from tools import require_tool

pytestmark = pytest.mark.integration

# The scoring script of v2: fine for one request, then broken (a leak, a lost connection...).
BREAKS_UNDER_USE = """

_calls = 0
_run = run


def run(raw_data):
    global _calls
    _calls += 1
    if _calls > 1:
        raise RuntimeError("lost the feature store connection")
    return _run(raw_data)
"""


def _dev_on_the_ssh_host(cfg: Path, server) -> None:
    data = yaml.safe_load(cfg.read_text())
    data["environments"]["dev"]["deployment"] = {
        "target": "remote-container",
        "image": {"base": BASE, "builder": "podman"},
        "restart": "no",
        "remote": {
            "host": "127.0.0.1",
            "port": server.port,
            "key": f"file:{server.client_key}",
            "known_hosts": str(server.known_hosts),
            "runtime": "podman",
        },
    }
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))


def test_train_on_one_runner_release_from_another(
    tmp_path: Path,
    shipyard_proc,
    shipyard_bin,
    postgres_server,
    s3_server,
    sshd,  # noqa: F811
) -> None:
    require_tool("nginx", "nginx")
    ensure_base_image()
    made = shipyard_proc("init", tmp_path / "a", "-o", "json")
    assert made.code == 0, made.err
    a = Path(json.loads(made.out)["folder"])
    _dev_on_the_ssh_host(a / "shipyard.yaml", sshd)
    b = tmp_path / "b" / a.name
    shutil.copytree(a, b)  # the same commit, checked out by the second runner

    db, bucket = postgres_server.create_database(), s3_server.create_bucket()
    shared = {**os.environ, **s3_server.env(), "SHIPYARD_DATABASE_URI": db,
              "SHIPYARD_ARTIFACT_URI": f"s3://{bucket}/team", "SHIPYARD_ACTOR": "ci-bot"}  # fmt: skip
    envs = {
        name: shared | {"SHIPYARD_CACHE_DIR": str(tmp_path / f"{name}-cache"), "SHIPYARD_HOST_ID": name}
        for name in ("a", "b")
    }
    folders = {"a": a, "b": b}

    def shipyard(runner: str, *args: str, code: int = 0) -> str:
        proc = subprocess.run(
            [str(shipyard_bin), *args], cwd=folders[runner], env=envs[runner], capture_output=True,
            text=True, timeout=600, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.returncode == code, (runner, args, proc.stdout[-5000:], proc.stderr[-3000:])
        assert "Traceback" not in proc.stderr
        return proc.stdout

    def serving() -> dict[str, tuple[str, str]]:
        status = json.loads(shipyard("b", "env", "status", "-o", "json"))
        return {s["env"]: (s["model_version"], s["target"]) for s in status}

    artifact = a / "shipyard-outputs" / "published" / "shipyard-model"
    try:
        assert "version=1" in shipyard("a", "ci", "run", "train")
        assert not (b / "shipyard-outputs").exists()
        assert not any((tmp_path / "b-cache").rglob("*.pkl"))  # B starts without A's files

        release = shipyard("b", "ci", "run", "release", "--approve", "--artifact", str(artifact))
        assert f"version 1 (the train run's artifact {artifact})" in release
        stages = ("dev", "smoke-dev", "qa", "smoke-qa", "prod", "smoke-prod")
        order = [release.index(f"==> {s}") for s in stages]
        assert order == sorted(order) and "ci run release: passed" in release
        assert serving() == {"dev": ("1", "remote-container"), "qa": ("1", "local"), "prod": ("1", "local")}
        listed = json.loads(shipyard("b", "endpoints", "list", "-o", "json"))
        dev = next(e for e in listed if e["endpoint"].endswith("-dev"))
        # Served from the SSH host's published port: a request without the key is refused there.
        assert httpx.post(f"{dev['url']}/score", json={"data": [[0.0] * 10]}, timeout=10).status_code == 401

        for folder in folders.values():  # the next commit, on both runners
            script = folder / "model" / "score.py"
            script.write_text(script.read_text() + BREAKS_UNDER_USE)
            cfg = folder / "shipyard.yaml"
            data = yaml.safe_load(cfg.read_text())
            data["train"]["parameters"]["alpha"] = 0.1  # better than v1: the gate passes it
            cfg.write_text(yaml.safe_dump(data, sort_keys=False))
        assert "version=2" in shipyard("a", "ci", "run", "train")
        broken = shipyard("b", "ci", "run", "release", "--approve", "--artifact", str(artifact), code=1)
        assert "failed at deploy-dev/smoke-dev" in broken and "lost the feature store connection" in broken
        assert "==> rollback-dev" in broken and "==> qa" not in broken
        rolled = broken[broken.index("==> rollback-dev") :]
        assert "back to" in rolled, rolled
        assert serving() == {"dev": ("1", "remote-container"), "qa": ("1", "local"), "prod": ("1", "local")}
        history = json.loads(shipyard("b", "env", "history", "dev", "-o", "json"))
        changes = [(h["action"], h["model_version"]) for h in history[:2]]
        assert changes == [("rollback", "1"), ("deploy", "2")]
        assert "smoke test passed" in shipyard("b", "ci", "smoke", "dev", "--version", "1")
    finally:
        for name in {e["endpoint"] for e in json.loads(shipyard("b", "endpoints", "list", "-o", "json"))}:
            shipyard("b", "endpoints", "delete", name)
