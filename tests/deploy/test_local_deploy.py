"""The local process target end to end: a real server subprocess, health, smoke test, stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from bundles import SCORE_PY, SEED, make_bundle
from deploy_support import port_refuses

from shipyard.deploy.local import LocalProcess, start_server, stop_server, wait_healthy
from shipyard.deploy.smoke import smoke_test
from shipyard.errors import DeploymentError
from shipyard.processes import process_alive

pytestmark = pytest.mark.integration

BROKEN_INIT_PY = """\
def init():
    raise RuntimeError("model.pkl is corrupt: cannot unpickle")
def run(raw_data):
    return {"result": []}
"""

DROPS_A_ROW_PY = SCORE_PY.replace("model.predict(data).tolist()", "model.predict(data).tolist()[:-1]")


@pytest.fixture
def launch(tmp_path: Path) -> Iterator:
    """Start servers for bundles; every server started is stopped at teardown."""
    started: list[LocalProcess] = []

    def _launch(bundle: Path, deployment_id: str) -> LocalProcess:
        proc = start_server(
            bundle,
            host="127.0.0.1",
            port=0,
            log_path=tmp_path / f"{deployment_id}.log",
            deployment_id=deployment_id,
        )
        started.append(proc)
        return proc

    yield _launch
    for proc in started:
        stop_server(proc.pid)


def test_deploy_smoke_and_stop(tmp_path: Path, launch) -> None:
    bundle, model = make_bundle(tmp_path / "bundle")
    proc = launch(bundle, "dep-ok")
    assert proc.port > 0 and proc.url == f"http://127.0.0.1:{proc.port}"
    wait_healthy(proc.url, 60, expected_deployment_id="dep-ok", pid=proc.pid, log_path=proc.log_path)

    result = smoke_test(proc.url, SEED, timeout_s=10)
    assert result.passed, result.detail
    assert (result.status_code, result.attempts) == (200, 1)
    assert result.latency_ms is not None and result.latency_ms > 0
    assert result.to_dict()["passed"] is True

    response = httpx.post(f"{proc.url}/score", json=SEED, timeout=10)
    assert response.status_code == 200
    expected = model.predict(np.array(SEED["data"], dtype=float)).tolist()
    assert response.json()["result"] == pytest.approx(expected)
    assert result.response["result"] == response.json()["result"]

    log_lines = [json.loads(line) for line in proc.log_path.read_text().splitlines() if line.startswith("{")]
    assert any(line["path"] == "/score" and line["status"] == 200 for line in log_lines)

    stop_server(proc.pid)
    assert not process_alive(proc.pid)
    assert port_refuses(proc.port)
    stop_server(proc.pid)  # already gone: no error


def test_a_server_starts_with_an_explicit_environment(tmp_path: Path, launch, monkeypatch) -> None:
    """A token exported where the deployment was made must not live on in the server's
    /proc/<pid>/environ: the server gets the interpreter's variables and what is passed."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value-123")
    monkeypatch.setenv("CUSTOMER_API_TOKEN", "tok-value-456")
    bundle, _ = make_bundle(tmp_path / "bundle")
    proc = launch(bundle, "dep-env")
    raw = Path(f"/proc/{proc.pid}/environ").read_bytes()
    env = dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
    assert "AWS_SECRET_ACCESS_KEY" not in env and "CUSTOMER_API_TOKEN" not in env
    assert b"aws-secret-value-123" not in raw and b"tok-value-456" not in raw
    assert env["PATH"] == os.environ["PATH"] and env["PYTHONUNBUFFERED"] == "1"
    wait_healthy(proc.url, 60, expected_deployment_id="dep-env", pid=proc.pid, log_path=proc.log_path)


def test_wrong_deployment_id_is_not_healthy(tmp_path: Path, launch) -> None:
    proc = launch(make_bundle(tmp_path / "bundle")[0], "dep-a")
    with pytest.raises(DeploymentError, match="expected 'dep-b'"):
        wait_healthy(proc.url, 3, expected_deployment_id="dep-b")


def test_broken_init_raises_with_log_tail(tmp_path: Path, launch) -> None:
    proc = launch(make_bundle(tmp_path / "broken", BROKEN_INIT_PY)[0], "dep-broken")
    with pytest.raises(DeploymentError) as info:
        # pid and log are found from the URL: start_server remembers the servers it started.
        wait_healthy(proc.url, 60)
    message = str(info.value)
    assert "exited before becoming healthy" in message
    assert "model.pkl is corrupt: cannot unpickle" in message
    assert "last lines of" in message
    assert not process_alive(proc.pid)


def test_smoke_test_fails_on_wrong_row_count(tmp_path: Path, launch) -> None:
    proc = launch(make_bundle(tmp_path / "drops", DROPS_A_ROW_PY)[0], "dep-drops")
    wait_healthy(proc.url, 60, pid=proc.pid, log_path=proc.log_path)
    result = smoke_test(proc.url, SEED, timeout_s=10)
    assert not result.passed
    assert result.status_code == 200
    assert result.detail == "expected 2 predictions (one per input row), got 1"


def test_smoke_test_reports_validation_error_and_dead_endpoint(tmp_path: Path, launch) -> None:
    proc = launch(make_bundle(tmp_path / "bundle")[0], "dep-422")
    wait_healthy(proc.url, 60, pid=proc.pid, log_path=proc.log_path)
    result = smoke_test(proc.url, {"data": [[1, 2, 3]]}, timeout_s=5)
    assert not result.passed and result.status_code == 422 and result.attempts == 1
    assert "data[0]: expected 10 numbers, got 3" in result.detail

    stop_server(proc.pid)
    dead = smoke_test(proc.url, SEED, timeout_s=1)
    assert not dead.passed and dead.status_code is None and dead.attempts >= 2
    assert "ConnectError" in dead.detail


def test_stop_server_never_signals_ourselves_or_strangers() -> None:
    stop_server(0)  # kill(0, ...) would hit our own process group
    stop_server(-1)
    assert not process_alive(0)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stop_server(stranger.pid, timeout_s=1)  # a reused pid that is not a shipyard server
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
