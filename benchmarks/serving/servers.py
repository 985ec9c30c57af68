"""The servers bench_serving.py measures: the model and request bodies they share, how each one is
started (the Azure ML server from its own venv), checked, waited for and stopped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loadgen import Load

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
AML_VENV = HERE / ".venvs" / "azureml"
BATCHING = {"max_batch_size": 64, "max_latency_ms": 2}
PEERS = ("azureml", "mlflow")
SHIPYARD = ("shipyard-off", "shipyard-on")


@dataclass
class Server:
    key: str
    label: str
    settings: str  # how it was started, for the docs
    path: str  # the scoring route
    body_file: str  # which request body it gets
    health: str  # GET path answering 200 once the model is loaded
    command: Callable[[int], list[str]] | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    check: Callable[[bytes], str | None] | None = None  # None when the answer is right
    not_run: str | None = None
    loads: list[Load] = field(default_factory=list)
    load_avg: tuple[float, float, float] | None = None


def pinned(name: str) -> str:
    """The `name==version` line of constraints.txt (the versions Shipyard's venv uses)."""
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.split("==")[0].strip().lower() == name.lower():
            return line.strip()
    return name


def ensure_venv(venv: Path, wanted: list[str], probe: str) -> tuple[Path | None, str]:
    """(the venv's bin folder, what `probe` printed) for a venv with `wanted` pip-installed,
    installing them when the venv is missing or was made for other requirements.

    On failure: (None, reason)."""
    marker = venv / ".requirements"
    python = venv / "bin" / "python"
    if not (python.exists() and marker.exists() and marker.read_text() == "\n".join(wanted)):
        print(f"installing {' '.join(wanted)} into {venv.relative_to(ROOT)} ...", flush=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        log = venv.parent / f"{venv.name}-install.log"
        with log.open("w") as out:
            steps = [[sys.executable, "-m", "venv", "--clear", str(venv)]] if not python.exists() else []
            steps.append([str(python), "-m", "pip", "install", "-q", *wanted])
            for cmd in steps:
                rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
                if rc != 0:
                    tail = [ln for ln in log.read_text().splitlines() if ln.strip()][-1:] or ["?"]
                    return None, f"pip install failed (rc {rc}): {tail[0][:160]} (see {log.name})"
        marker.write_text("\n".join(wanted))
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    if out.returncode != 0:
        return None, f"the {venv.name} venv is broken: {out.stderr.strip()[-160:]}"
    return venv / "bin", out.stdout.strip()


def ensure_azureml_venv() -> tuple[Path | None, str]:
    """(azmlinfsrv path, versions) from its own venv (the model's libraries at Shipyard's pins)."""
    wanted = ["azureml-inference-server-http", *(pinned(p) for p in ("scikit-learn", "joblib", "numpy"))]
    probe = (
        "import importlib.metadata as m; print(m.version('azureml-inference-server-http'),"
        " m.version('gunicorn'), m.version('flask'))"
    )
    bin_dir, said = ensure_venv(AML_VENV, wanted, probe)
    return (bin_dir / "azmlinfsrv" if bin_dir else None), said


def ensure_granian_venv() -> tuple[Path | None, str]:
    """(granian path, version) from its own venv: the other HTTP stack, for the ceiling only."""
    wanted = ["granian[uvloop]"]
    probe = "import importlib.metadata as m; print(m.version('granian'))"
    bin_dir, said = ensure_venv(HERE / ".venvs" / "granian", wanted, probe)
    return (bin_dir / "granian" if bin_dir else None), said


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -------------------------------------------------------------------------------------- fixture


def prepare(work: Path) -> tuple[list[list[float]], list[float]]:
    """Model, bundle, MLflow model and request bodies under `work`; returns (rows, predictions)."""
    import joblib
    import pandas as pd
    from sklearn.linear_model import Ridge

    df = pd.read_csv(ROOT / "examples" / "diabetes" / "data" / "diabetes.csv")
    x, y = df.drop(columns="target").to_numpy(), df["target"].to_numpy()
    model = Ridge(alpha=0.5).fit(x, y)
    rows = x[:2].tolist()
    expected = [float(p) for p in model.predict(x[:2])]

    # The bundle, as packaging builds it (tests/bundles.py), with the example's score.py.
    bundle = work / "bundle"
    model_dir = bundle / "model" / "diabetes-ridge" / "1"
    model_dir.mkdir(parents=True)
    joblib.dump(model, model_dir / "model.pkl")
    shutil.copy(ROOT / "examples" / "diabetes" / "score.py", bundle / "score.py")
    (bundle / "requirements.txt").write_text("scikit-learn\njoblib\nnumpy\n")
    manifest = {
        "model_name": "diabetes-ridge",
        "model_version": "1",
        "entry_script": "score.py",
        "model_dir": "model/diabetes-ridge/1",
        "input_sample": {"data": rows},
        "signature": {"inputs": {"data": {"type": "array", "shape": [-1, 10], "dtype": "float"}}},
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    (work / "off.json").write_text(json.dumps({"auth": False}))
    (work / "on.json").write_text(json.dumps({"auth": False, "batching": BATCHING}))

    # The same model as an MLflow model (no signature: MLflow's fastest path, no schema checks).
    import mlflow.sklearn

    mlflow.sklearn.save_model(model, str(work / "mlflow-model"))

    (work / "data.json").write_text(json.dumps({"data": rows}))
    (work / "inputs.json").write_text(json.dumps({"inputs": rows}))
    return rows, expected


def answer_check(expected: list[float], key: str) -> Callable[[bytes], str | None]:
    def check(raw: bytes) -> str | None:
        try:
            got = json.loads(raw)[key]
        except (ValueError, KeyError, TypeError):
            return f"unexpected answer {raw[:120]!r}"
        pairs = zip(got, expected, strict=False)
        if len(got) != len(expected) or any(abs(a - b) > 1e-6 * max(1, abs(b)) for a, b in pairs):
            return f"wrong predictions {got} (expected {expected})"
        return None

    return check


def servers(
    work: Path, expected: list[float], aml: tuple[Path | None, str], granian: tuple[Path | None, str]
) -> list[Server]:
    py = str(BIN / "python")
    bundle = str(work / "bundle")
    found_uvloop = _has("uvloop") and _has("httptools")

    def shipyard(settings: str) -> Callable[[int], list[str]]:
        return lambda port: [
            py, "-m", "shipyard.serving", "--bundle", bundle, "--host", "127.0.0.1",
            "--port", str(port), "--settings", str(work / settings),
        ]  # fmt: skip

    import mlflow
    import uvicorn

    loop_http = "uvloop + httptools" if found_uvloop else "asyncio + h11"
    result = [
        Server(
            "shipyard-off", "Shipyard, batching off",
            f"1 worker, uvicorn {uvicorn.__version__} ({loop_http}), settings `{{\"auth\": false}}`",
            "/score", "data.json", "/", shipyard("off.json"), check=answer_check(expected, "result"),
        ),
        Server(
            "shipyard-on", "Shipyard, batching on",
            f"1 worker, as above plus `\"batching\": {json.dumps(BATCHING)}`",
            "/score", "data.json", "/", shipyard("on.json"), check=answer_check(expected, "result"),
        ),
    ]  # fmt: skip
    exe, version = aml
    if exe is None:
        result.append(Server("azureml", "Azure ML inference server", "", "/score", "data.json", "/",
                             not_run=version))  # fmt: skip
    else:
        aml_version, gunicorn_version, flask_version = version.split()
        result.append(
            Server(
                "azureml", f"Azure ML inference server {aml_version}",
                f"`azmlinfsrv --entry_script score.py --port P` (its defaults = Azure ML's: WORKER_COUNT=1 "
                f"→ gunicorn {gunicorn_version} with 1 sync worker, Flask {flask_version}, timeout 300 s, "
                "access log on, App Insights off), AZUREML_MODEL_DIR = the model folder",
                "/score", "data.json", "/",
                lambda port: [str(exe), "--entry_script", "score.py", "--port", str(port)],
                env={"AZUREML_MODEL_DIR": str(work / "bundle" / "model" / "diabetes-ridge" / "1")},
                cwd=work / "bundle", check=answer_check(expected, "result"),
            )
        )  # fmt: skip
    result.append(
        Server(
            "mlflow", f"MLflow {mlflow.__version__} `models serve`",
            f"`mlflow models serve -m M --env-manager local --workers 1` (its default server: uvicorn "
            f"{uvicorn.__version__}, loop/http auto = {loop_http}, access log on, timeout 60 s); "
            "model saved with `mlflow.sklearn.save_model`, no signature; body `{\"inputs\": rows}`",
            "/invocations", "inputs.json", "/ping",
            lambda port: [
                str(BIN / "mlflow"), "models", "serve", "-m", str(work / "mlflow-model"),
                "--env-manager", "local", "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
            ],
            env={"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
            check=answer_check(expected, "predictions"),
        )
    )  # fmt: skip
    result.append(
        Server(
            "hello", "Bare ASGI hello-world (ceiling)",
            f"uvicorn {uvicorn.__version__} + uvloop + httptools, 1 worker, no access log; "
            "raw ASGI app answering a fixed JSON",
            "/score", "data.json", "/",
            lambda port: [
                py, "-m", "uvicorn", "hello_asgi:app", "--app-dir", str(HERE), "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--log-level", "warning",
            ],
        )
    )  # fmt: skip
    # (names of their own: the Azure ML command above refers to `exe` when it is called)
    granian_exe, granian_version = granian
    label = f"Bare RSGI hello-world on granian {granian_version if granian_exe else ''}".rstrip()
    if granian_exe is None:
        result.append(Server("hello-granian", label, "", "/score", "data.json", "/", not_run=granian_version))
    else:
        result.append(
            Server(
                "hello-granian", label,
                f"granian {granian_version} `--interface rsgi --workers 1 --runtime-threads 1 "
                "--loop uvloop`, "
                "no access log; the same fixed JSON (the HTTP stack not chosen: see the last ratio)",
                "/score", "data.json", "/",
                lambda port: [
                    str(granian_exe), "--interface", "rsgi", "--workers", "1", "--runtime-threads", "1",
                    "--loop", "uvloop", "--host", "127.0.0.1", "--port", str(port),
                    "--log-level", "warning", "hello_rsgi:app",
                ],
                cwd=HERE,
            )
        )  # fmt: skip
    return result


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def http(method: str, url: str, body: bytes | None = None, timeout: float = 5) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_healthy(proc: subprocess.Popen, url: str, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with code {proc.returncode} before answering"
        try:
            if http("GET", url, timeout=2)[0] == 200:
                return None
        except OSError:
            pass
        time.sleep(0.2)
    return f"no healthy answer on {url} within {timeout:g} s"


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's own process group (gunicorn/uvicorn children too), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
