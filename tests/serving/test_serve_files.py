"""`shipyard serve --entry-script score.py --model model.pkl`: an Azure ML project's files served as
they are, without a project, a workspace or a registry, by the real server in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
from sklearn.linear_model import Ridge

pytestmark = pytest.mark.integration


def _free_port() -> int:
    # The server binds the port itself; `--port 0` would pick one but not tell us which.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"`shipyard serve` exited with {proc.returncode}:\n{log.read_text()}")
        try:
            response = httpx.get(f"{url}/", timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"`shipyard serve` did not answer GET / within {timeout_s}s:\n{log.read_text()}")


@pytest.fixture
def model_file(tmp_path: Path) -> tuple[Path, Ridge]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 10))
    model = Ridge(alpha=0.5).fit(x, x @ np.linspace(1, 2, 10) + 7.0)
    path = tmp_path / "files" / "model.pkl"
    path.parent.mkdir()
    joblib.dump(model, path)
    return path, model


@pytest.fixture
def served(
    shipyard_bin: Path, example_dir: Path, model_file: tuple[Path, Ridge], tmp_path: Path
) -> Iterator[tuple[str, dict]]:
    """(base URL, GET / body) of `shipyard serve` on the example's score.py and a model file."""
    port = _free_port()
    cwd = tmp_path / "elsewhere"  # no shipyard.yaml here or above: no project is needed
    cwd.mkdir()
    env = {**os.environ, "SHIPYARD_WORKSPACE": str(tmp_path / "unused-workspace")}
    command = [str(shipyard_bin), "serve", "--entry-script", str(example_dir / "score.py")]
    command += ["--model", str(model_file[0]), "--port", str(port)]
    log = tmp_path / "serve.log"  # a file, not a pipe: a chatty server never blocks on it
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        health = _wait_healthy(url, proc, log)
        yield url, health
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    assert not (tmp_path / "unused-workspace").exists(), "serving files must not create a workspace"


def test_serve_files_answers_like_the_model(
    served: tuple[str, dict], model_file: tuple[Path, Ridge], seed_payload: dict
) -> None:
    url, health = served
    assert health["model_name"] == "model" and health["model_version"] == "1"

    response = httpx.post(f"{url}/score", json=seed_payload, timeout=10)
    assert response.status_code == 200, response.text
    expected = model_file[1].predict(np.array(seed_payload["data"], dtype=float))
    assert response.json()["result"] == pytest.approx(expected.tolist())

    swagger = httpx.get(f"{url}/swagger.json", timeout=10)
    assert swagger.status_code == 200
    assert swagger.json()["swagger"] == "2.0" and "/score" in swagger.json()["paths"]


def test_serve_entry_script_needs_a_model(shipyard_bin: Path, example_dir: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(shipyard_bin), "serve", "--entry-script", str(example_dir / "score.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--model" in result.stderr + result.stdout
