"""The built wheel installed into a fresh venv (no source tree on the path, no index: only the
wheels of its dependencies) runs the example end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _run(args: list, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{args[:4]} exit {proc.returncode}:\n{(proc.stdout + proc.stderr)[-3000:]}"
    return proc


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment minus anything that could put the checkout or its venv on the path, point at
    a workspace, or give pip another source than the wheelhouse."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("SHIPYARD_", "PIP_"))}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory, repo_root) -> tuple[Path, Path]:
    """(venv, wheel): a fresh venv with the wheel `make dist` makes of the checkout (`python -m
    build`: the sdist, then the wheel from the sdist), installed offline."""
    root = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", root / "dist", repo_root], timeout=300)
    (wheel,) = (root / "dist").glob("shipyard_mlops-*-py3-none-any.whl")
    (sdist,) = (root / "dist").glob("shipyard_mlops-*.tar.gz")
    with tarfile.open(sdist) as tar:
        assert any(
            n.endswith("src/shipyard/store/migrations/versions/0001_initial.py") for n in tar.getnames()
        )
    # The dependencies' wheels, pinned as the project pins them (pip's own cache makes this quick).
    wheels = root / "wheels"
    pip = [sys.executable, "-m", "pip", "download", "-q", "-d", wheels, "-c", repo_root / "constraints.txt"]
    _run([*pip, wheel], timeout=600)
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = [python, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels, wheel]
    _run(install, env=_clean_env(), cwd=root, timeout=900)
    return env_dir, wheel


def test_the_installed_wheel_runs_the_example_end_to_end(
    installed, tmp_path, copy_project, mlflow_client, query, teardown_endpoints
):
    installed, _ = installed
    python, shipyard = installed / "bin" / "python", installed / "bin" / "shipyard"
    origin = _run([python, "-c", "import shipyard; print(shipyard.__file__)"], env=_clean_env(), cwd=tmp_path)
    assert Path(origin.stdout.strip()).is_relative_to(installed), origin.stdout
    meta = _run([python, "-m", "pip", "show", "shipyard-mlops"], env=_clean_env(), cwd=tmp_path)
    assert f"Location: {installed}" in meta.stdout and "Editable" not in meta.stdout

    project = copy_project(tmp_path / "project")
    train = project / "train.py"
    train.write_text("import shipyard as _s\nprint('shipyard from:', _s.__file__)\n" + train.read_text())
    ws = project / ".shipyard"
    env = _clean_env(SHIPYARD_CACHE_DIR=str(tmp_path / "cache"))
    try:
        res = subprocess.run(
            [shipyard, "run", "--workspace", ws, "--output", "json"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        summary = json.loads(res.stdout)
        assert summary["status"] == "succeeded", summary
        steps = {s["step"]: s["status"] for s in summary["steps"]}
        assert steps == {step: "succeeded" for step in steps} and "smoke_test" in steps, steps
        assert summary["model"]["name"] == "diabetes-ridge" and summary["model"]["version"] == "1"
        client = mlflow_client(ws)
        assert str(client.get_model_version_by_alias("diabetes-ridge", "production").version) == "1"
        log = next(ws.rglob("train.log")).read_text()
        assert f"shipyard from: {installed}" in log, log[-2000:]
        [dep] = query(ws, "select state, pid, model_version from shipyard_deployments")
        assert dep["state"] == "active" and dep["model_version"] == "1"
        cmdline = Path(f"/proc/{dep['pid']}/cmdline").read_bytes().split(b"\0")
        assert Path(cmdline[0].decode()).parent == installed / "bin", cmdline  # the fresh venv serves
    finally:
        teardown_endpoints(ws)


def test_init_vendor_wheel_copies_the_wheel_this_shipyard_was_installed_from(installed, tmp_path):
    venv_dir, wheel = installed
    res = subprocess.run(
        [venv_dir / "bin" / "shipyard", "init", "shop", "--vendor-wheel", "--output", "json"],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    vendored = tmp_path / "shop" / "vendor" / wheel.name
    assert f"vendor/{wheel.name}" in json.loads(res.stdout)["written"]
    assert vendored.read_bytes() == wheel.read_bytes()


def test_without_its_wheel_file_init_vendor_wheel_says_how_to_get_one(installed, tmp_path):
    venv_dir, wheel = installed
    moved = wheel.rename(wheel.with_suffix(".moved"))
    try:
        res = subprocess.run(
            [venv_dir / "bin" / "shipyard", "init", "shop", "--vendor-wheel"],
            cwd=tmp_path,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        moved.rename(wheel)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "there is no wheel file of shipyard-mlops==" in res.stderr and "make dist" in res.stderr
    assert not (tmp_path / "shop").exists()
