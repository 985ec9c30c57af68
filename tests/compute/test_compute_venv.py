"""The venv compute target on real virtual environments.

One environment (spec: `six`) is built per test module and shared; each test asserts on what the
environment does (its Python, what imports there, the marker that makes it reusable), not on time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
import time
from pathlib import Path

import pytest

from shipyard.compute.base import StepJob, run
from shipyard.compute.venv import VenvTarget
from shipyard.config.models import WorkspaceSettings
from shipyard.errors import StepFailed
from shipyard.venvs.cache import MARKER, EnvCache, uv_path
from shipyard.workspace import Workspace

pytestmark = pytest.mark.integration

SECRET = "venv-secret-9f8e7d6c5b4a"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, VenvTarget, Path, float]:
    root = tmp_path_factory.mktemp("compute-venv")
    ws = Workspace.get_or_create(WorkspaceSettings(root=str(root / "ws")))
    project = root / "project"
    project.mkdir()
    (project / "requirements.txt").write_text("six\n")
    target = VenvTarget(ws, installer="pip")
    started = time.monotonic()
    env = target.envs.ensure(target.spec(job_for(project, ws, "")))
    assert env.action == "built"
    return ws, target, project, time.monotonic() - started


def job_for(project: Path, ws: Workspace, code: str, **kw: object) -> StepJob:
    name = str(kw.pop("name", "step"))
    (project / f"{name}.py").write_text(code)
    fields: dict[str, object] = {
        "name": name,
        "project_dir": project,
        "script": f"{name}.py",
        "log_path": ws.subdir("logs") / f"{name}.log",
        "outputs_dir": ws.subdir("outputs", name),
        "environment": Path("requirements.txt"),
    }
    fields.update(kw)
    return StepJob(**fields)  # type: ignore[arg-type]


def test_env_is_built_once_and_reused(built: tuple[Workspace, VenvTarget, Path, float]) -> None:
    ws, target, project, _ = built
    job = job_for(project, ws, "print('hi')\n", name="reuse")
    env_dir = target.envs.path(target.spec(job))
    assert env_dir.parent == ws.root / "envs" and len(env_dir.name) == 12
    marker = env_dir / MARKER
    before = (marker.stat().st_mtime_ns, (env_dir / "bin" / "python").lstat().st_mtime_ns)
    data = json.loads(marker.read_text())
    assert data["requirements"] == ["six"] and data["installer"] == "pip"
    assert "mlflow==" + importlib.metadata.version("mlflow") in data["runtime_requirements"]
    run(target, job)
    assert target.last_env is not None and target.last_env.action == "reused"
    assert (marker.stat().st_mtime_ns, (env_dir / "bin" / "python").lstat().st_mtime_ns) == before


def test_script_runs_with_the_env_python_and_only_its_packages(
    built: tuple[Workspace, VenvTarget, Path, float],
) -> None:
    ws, target, project, _ = built
    assert importlib.util.find_spec("hypothesis") is not None  # in the host venv, not in the spec
    code = (
        "import sys, importlib.util, six, shipyard\n"
        "print('prefix', sys.prefix)\n"
        "print('six', six.__version__)\n"
        "print('hypothesis', importlib.util.find_spec('hypothesis') is not None)\n"
        "print('pythonpath', __import__('os').environ.get('PYTHONPATH'))\n"
    )
    job = job_for(project, ws, code, name="imports")
    os.environ["PYTHONPATH"] = str(Path(importlib.util.find_spec("hypothesis").origin).parents[1])  # type: ignore[arg-type]
    try:
        run(target, job)
    finally:
        del os.environ["PYTHONPATH"]
    lines = dict(line.split(" ", 1) for line in job.log_path.read_text().splitlines())
    assert lines["prefix"] == str(target.envs.path(target.spec(job)))
    assert lines["six"]
    assert lines["hypothesis"] == "False"
    assert lines["pythonpath"] == "None"


def test_script_logs_to_the_workspace_mlflow_store(built: tuple[Workspace, VenvTarget, Path, float]) -> None:
    ws, target, project, _ = built
    code = (
        "import shipyard\n"
        "with shipyard.start_run() as r:\n"
        "    shipyard.log_metric('rmse', 0.25)\n"
        "    print('run', r.run_id)\n"
    )
    job = job_for(project, ws, code, name="tracked", env={**ws.environment(), "SHIPYARD_EXPERIMENT": "venv"})
    run(target, job)
    run_id = job.log_path.read_text().split("run ")[1].split()[0]
    assert ws.mlflow.get_run(run_id).data.metrics == {"rmse": 0.25}


def test_failing_script_reports_exit_code_and_tail(built: tuple[Workspace, VenvTarget, Path, float]) -> None:
    ws, target, project, _ = built
    job = job_for(project, ws, "import hypothesis\n", name="fails")
    with pytest.raises(StepFailed) as info:
        run(target, job)
    message = str(info.value)
    assert "exited with code 1 on the venv target" in message
    assert "ModuleNotFoundError: No module named 'hypothesis'" in message


def test_cancel_stops_a_running_script(built: tuple[Workspace, VenvTarget, Path, float]) -> None:
    ws, target, project, _ = built
    job = job_for(project, ws, "import time\nprint('ready', flush=True)\ntime.sleep(120)\n", name="slow")
    handle = target.submit(job)
    deadline = time.monotonic() + 30
    while "ready" not in target.logs(handle) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert target.status(handle) == "running"
    target.cancel(handle)
    result = target.wait(handle, 5)
    assert result.status == "cancelled" and result.exit_code is not None and result.exit_code < 0


def test_secret_reaches_the_process_and_no_workspace_file(
    built: tuple[Workspace, VenvTarget, Path, float],
) -> None:
    ws, target, project, _ = built
    code = (
        "import hashlib, os, pathlib\n"
        "value = os.environ['API_TOKEN']\n"
        "digest = hashlib.sha256(value.encode()).hexdigest()\n"
        "pathlib.Path(os.environ['SHIPYARD_OUTPUTS'], 'digest').write_text(digest)\n"
        "print('token is', value)\n"
    )
    job = job_for(project, ws, code, name="secret", secret_env={"API_TOKEN": SECRET})
    run(target, job)
    assert (job.outputs_dir / "digest").read_text() == hashlib.sha256(SECRET.encode()).hexdigest()
    assert job.log_path.read_text() == "token is ***\n"
    needle = SECRET.encode()
    for path in [*ws.root.rglob("*"), *project.rglob("*")]:
        if path.is_file() and not path.is_symlink():
            assert needle not in path.read_bytes(), path


def test_a_second_builder_waits_for_the_lock(built: tuple[Workspace, VenvTarget, Path, float]) -> None:
    ws, target, project, _ = built
    spec = target.spec(job_for(project, ws, "", name="lock"))
    results: list[str] = []
    with ws.host_lock(f"env-{spec.short_hash}"):
        thread = threading.Thread(
            target=lambda: results.append(EnvCache(ws, installer="pip").ensure(spec).action)
        )
        thread.start()
        thread.join(1.5)
        assert thread.is_alive() and results == []  # blocked while another build holds the lock
    thread.join(60)
    assert results == ["reused"]


def test_changed_shipyard_wheel_only_reinstalls_shipyard(
    built: tuple[Workspace, VenvTarget, Path, float],
) -> None:
    ws, target, project, _ = built
    spec = target.spec(job_for(project, ws, "", name="refresh"))
    marker_path = target.envs.path(spec) / MARKER
    marker = json.loads(marker_path.read_text())
    current = marker["shipyard_wheel"]
    marker_path.write_text(json.dumps({**marker, "shipyard_wheel": "# an older tree"}))
    env = target.envs.ensure(spec)
    assert env.action == "refreshed"
    after = json.loads(marker_path.read_text())
    assert after["shipyard_wheel"] == current and after["built_at"] == marker["built_at"]
    assert target.envs.ensure(spec).action == "reused"


def test_half_built_env_is_removed_and_a_failed_build_names_the_spec(
    built: tuple[Workspace, VenvTarget, Path, float],
) -> None:
    ws, target, project, _ = built
    (project / "broken.txt").write_text("shipyard-test-no-such-package-4f2a==0.0.1\n")
    job = job_for(project, ws, "", name="broken", environment=Path("broken.txt"))
    env_dir = target.envs.path(target.spec(job))
    env_dir.mkdir(parents=True)
    (env_dir / "left-over-from-a-crash").write_text("x")
    with pytest.raises(StepFailed) as info:
        run(target, job)
    message = str(info.value)
    assert str(project / "broken.txt") in message and "shipyard-test-no-such-package-4f2a" in message
    assert not (env_dir / "left-over-from-a-crash").exists()
    assert not (env_dir / MARKER).exists()
    assert not job.log_path.exists()  # the script never started


def test_uv_builds_an_equivalent_env(tmp_path: Path) -> None:
    if uv_path() is None:  # a dev dependency of Shipyard (pyproject.toml), so not in CI
        pytest.skip("uv is not installed: pip install uv (make test installs it) to test the uv path")
    ws = Workspace.get_or_create(WorkspaceSettings(root=str(tmp_path / "ws")))
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.txt").write_text("six\n")
    target = VenvTarget(ws)  # uv is chosen when it is on PATH
    job = job_for(project, ws, "import sys, six, shipyard\nprint(sys.prefix)\n", name="uv")
    run(target, job)
    assert target.last_env is not None and target.last_env.action == "built"
    env_dir = target.envs.path(target.spec(job))
    assert job.log_path.read_text().strip() == str(env_dir)
    assert json.loads((env_dir / MARKER).read_text())["installer"] == "uv"
