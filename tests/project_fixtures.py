"""Helpers for the end-to-end tests: project copies, the CLI (in-process and as a subprocess),
direct reads of the workspace database, an independent MLflow client, and endpoint cleanup.

The helpers are fixtures returning callables so that test modules never import this module; the
root conftest loads it as a plugin, so every test folder has them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray_support import ray_cluster  # noqa: F401  (one local Ray cluster for the whole session)

SEED_PAYLOAD = {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}
ALL_STEPS = ["data_check", "train", "evaluate", "register", "package", "deploy", "smoke_test"]
MODEL = "diabetes-ridge"


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        try:
            return json.loads(self.out)
        except json.JSONDecodeError as exc:  # pragma: no cover - shown on failure only
            raise AssertionError(
                f"stdout is not JSON ({exc}):\n{self.out}\n--- stderr ---\n{self.err}"
            ) from None


@pytest.fixture(scope="session")
def seed_payload() -> dict:
    return SEED_PAYLOAD


@pytest.fixture(scope="session")
def copy_project(example_dir: Path) -> Callable[..., Path]:
    """copy_project(dest, deployment=True): a fresh copy of the diabetes example at `dest`
    (without any workspace or outputs); `deployment=False` drops the deployment section."""

    def _copy(dest: Path, *, deployment: bool = True) -> Path:
        shutil.copytree(
            example_dir, dest, ignore=shutil.ignore_patterns(".shipyard", "outputs", "__pycache__")
        )
        if not deployment:
            cfg = dest / "shipyard.yaml"
            data = yaml.safe_load(cfg.read_text())
            del data["deployment"]
            cfg.write_text(yaml.safe_dump(data, sort_keys=False))
        return dest

    return _copy


@pytest.fixture(scope="session")
def cli() -> Callable[..., CliResult]:
    """cli(*args): `shipyard ARGS` in this process via shipyard.cli.main.main; returns its exit code
    and what it wrote to stdout and stderr."""
    from shipyard.cli.main import main

    def _run(*args: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
        return CliResult(code, out.getvalue(), err.getvalue())

    return _run


@pytest.fixture(scope="session")
def shipyard_proc(shipyard_bin: Path) -> Callable[..., CliResult]:
    """shipyard_proc(*args, cwd=None, env=None, timeout=180): the console script as a subprocess."""

    def _run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 180):
        proc = subprocess.run(
            [str(shipyard_bin), *map(str, args)],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return _run


def db_uri(ws: Path) -> str:
    return f"sqlite:///{ws / 'shipyard.db'}"


@pytest.fixture(scope="session")
def query() -> Callable[..., list[dict]]:
    """query(ws, sql, *params): rows of the workspace database as dicts (read with sqlite3, not
    through Shipyard's code)."""

    def _query(ws: Path, sql: str, *params: Any) -> list[dict]:
        con = sqlite3.connect(ws / "shipyard.db", timeout=30)
        try:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute(sql, params)]
        finally:
            con.close()

    return _query


@pytest.fixture(scope="session")
def mlflow_client() -> Callable[[Path], Any]:
    """mlflow_client(ws): a plain MLflow client on the workspace's database."""

    def _client(ws: Path):
        from mlflow import MlflowClient

        uri = db_uri(ws)
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    return _client


@pytest.fixture(scope="session")
def reference_model(example_dir: Path) -> Callable[[float], tuple[float, Any]]:
    """reference_model(alpha): (mse, fitted Ridge) computed here exactly as train.py does, to
    check the values the pipeline logged and the predictions the endpoint serves."""
    import pandas as pd
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_squared_error
    from sklearn.model_selection import train_test_split

    df = pd.read_csv(example_dir / "data" / "diabetes.csv")
    x, y = df.drop(columns="target"), df["target"]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42)

    def _fit(alpha: float):
        model = Ridge(alpha=alpha).fit(x_train.to_numpy(), y_train)
        return float(mean_squared_error(y_test, model.predict(x_test.to_numpy()))), model

    return _fit


def pid_alive(pid: int) -> bool:
    """Exists and is not a zombie (checked here, not with Shipyard's helper)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture(scope="session")
def pid_is_alive() -> Callable[[int], bool]:
    return pid_alive


@pytest.fixture(scope="session")
def pid_gone() -> Callable[..., bool]:
    """pid_gone(pid, timeout_s=15): wait until the process has exited."""
    return wait_gone


@pytest.fixture(scope="session")
def teardown_endpoints(query) -> Callable[[Path], None]:
    """teardown_endpoints(ws): delete every endpoint of the workspace and check that no recorded
    server process is left (killing leftovers so a failing test leaks nothing)."""

    def _teardown(ws: Path) -> None:
        if not (ws / "shipyard.db").is_file():
            return
        from shipyard.config.loader import resolve_workspace_settings
        from shipyard.deploy.endpoints import delete_endpoint
        from shipyard.workspace import Workspace

        rows = query(ws, "select id, endpoint, pid from shipyard_deployments")
        workspace = Workspace.get_or_create(resolve_workspace_settings(None, cli={"root": str(ws)}))
        try:
            for endpoint in sorted({r["endpoint"] for r in rows}):
                delete_endpoint(workspace, endpoint)
        finally:
            workspace.store.dispose()
            leaked = [r["pid"] for r in rows if r["pid"] and not wait_gone(r["pid"], 10)]
            for pid in leaked:  # only this workspace's own scoring servers, never a reused pid
                with contextlib.suppress(OSError):
                    if b"shipyard.serving" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        os.kill(pid, 9)
        assert not leaked, f"server processes still running after endpoint delete: {leaked}"

    return _teardown
