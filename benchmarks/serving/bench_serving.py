"""Benchmark the scoring server beside its peers, under load from wrk (a separate native tool).

Servers, one at a time, each with one worker on a free port of 127.0.0.1, all scoring the diabetes
Ridge model (alpha 0.5, trained here from examples/diabetes/data/diabetes.csv) for a request of
two rows:

1. Shipyard, batching off              `python -m shipyard.serving --bundle B --settings {"auth": false}`
2. Shipyard, batching on               the same with `"batching": {"max_batch_size": 64, "max_latency_ms": 2}`
3. Azure ML inference server           `azmlinfsrv --entry_script score.py` (own venv under .venvs/)
4. MLflow scoring server               `mlflow models serve --env-manager local --workers 1`
5. Bare ASGI hello-world               uvicorn + uvloop + httptools, fixed JSON: the ceiling

Each server: wait for health, check one answer against the model, warm up, then wrk at
concurrency 1, 8 and 64. By default the server is pinned to one CPU and wrk to the others, so the
load generator does not steal the server's core. Writes the "## Serving" section of
docs/benchmarks.md and raw results under benchmarks/serving/results/. Run with `make bench-serving`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from report import write_section  # noqa: E402

BIN = Path(sys.executable).parent
AML_VENV = HERE / ".venvs" / "azureml"
RESULTS = HERE / "results"
LOADS = [(1, 1), (2, 8), (2, 64)]  # (wrk threads, connections)
BATCHING = {"max_batch_size": 64, "max_latency_ms": 2}
PEERS = ("azureml", "mlflow")
SHIPYARD = ("shipyard-off", "shipyard-on")


@dataclass
class Load:
    connections: int
    threads: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    timeouts: int
    requests: int


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=15, help="seconds per load (default 15)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up load (default 2)")
    parser.add_argument("--servers", help=f"comma list of {','.join([*SHIPYARD, *PEERS, 'hello'])}")
    parser.add_argument("--startup-timeout", type=float, default=120, help="seconds to wait for health")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server and wrk to CPUs")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------- tools


def ensure_wrk() -> str | None:
    """Path of wrk; installs the Debian package when missing and running as root. None: no wrk."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("wrk is not installed and this is not root with apt-get: install it (apt-get install wrk)")
        return None
    print("installing wrk with apt-get ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "install", "-y", "-q", "wrk"], ["apt-get", "update", "-q"]):
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if shutil.which("wrk"):
            break
    else:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, stdout=subprocess.DEVNULL)
    return shutil.which("wrk")


def pinned(name: str) -> str:
    """The `name==version` line of constraints.txt (the versions Shipyard's venv uses)."""
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.split("==")[0].strip().lower() == name.lower():
            return line.strip()
    return name


def ensure_azureml_venv() -> tuple[Path | None, str]:
    """(azmlinfsrv path, version) from its own venv, installing it with pip when needed.

    On failure: (None, reason)."""
    wanted = ["azureml-inference-server-http", *(pinned(p) for p in ("scikit-learn", "joblib", "numpy"))]
    marker = AML_VENV / ".requirements"
    exe = AML_VENV / "bin" / "azmlinfsrv"
    if not (exe.exists() and marker.exists() and marker.read_text() == "\n".join(wanted)):
        print(f"installing {' '.join(wanted)} into {AML_VENV.relative_to(ROOT)} ...", flush=True)
        AML_VENV.parent.mkdir(parents=True, exist_ok=True)
        log = AML_VENV.parent / "azureml-install.log"
        with log.open("w") as out:
            steps = [[sys.executable, "-m", "venv", "--clear", str(AML_VENV)]] if not exe.exists() else []
            steps.append([str(AML_VENV / "bin" / "python"), "-m", "pip", "install", "-q", *wanted])
            for cmd in steps:
                rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
                if rc != 0:
                    tail = [ln for ln in log.read_text().splitlines() if ln.strip()][-1:] or ["?"]
                    return None, f"pip install failed (rc {rc}): {tail[0][:160]} (see {log.name})"
        marker.write_text("\n".join(wanted))
    out = subprocess.run(
        [
            str(AML_VENV / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('azureml-inference-server-http'),"
            " m.version('gunicorn'), m.version('flask'))",
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return None, f"the azureml venv is broken: {out.stderr.strip()[-160:]}"
    return exe, out.stdout.strip()


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


def servers(work: Path, expected: list[float], aml: tuple[Path | None, str]) -> list[Server]:
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
    return result


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# ------------------------------------------------------------------------------------- running


def cpu_split(no_pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, wrk CPUs): the server gets the last CPU, wrk the others."""
    cpus = sorted(os.sched_getaffinity(0))
    if no_pin or len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


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


def run_wrk(wrk: str, url: str, body: Path, threads: int, conns: int, seconds: float, cpus) -> dict:
    cmd = [
        wrk, f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s", "--timeout", "10s", "--latency",
        "-s", str(HERE / "post.lua"), url,
    ]  # fmt: skip
    env = dict(os.environ, BENCH_BODY_FILE=str(body), BENCH_PATH=urllib.parse.urlsplit(url).path)
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=seconds + 60,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )  # fmt: skip
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON "))
    raise RuntimeError(f"wrk printed no summary (rc {out.returncode}): {out.stderr.strip()[-300:]}")


def bench(server: Server, work: Path, wrk: str, args: argparse.Namespace, logs: Path) -> None:
    server_cpus, wrk_cpus = cpu_split(args.no_pin)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = logs / f"{server.key}.log"
    env = dict(os.environ, **server.env)
    print(f"\n== {server.label}: starting on port {port}", flush=True)
    with log.open("w") as out:
        proc = subprocess.Popen(
            server.command(port), cwd=server.cwd or work, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, server_cpus)) if server_cpus else None,
        )  # fmt: skip
        try:
            started = time.perf_counter()
            problem = wait_healthy(proc, base + server.health, args.startup_timeout)
            if problem:
                tail = " | ".join(log.read_text().strip().splitlines()[-3:])[-300:]
                server.not_run = f"{problem}: {tail}"
                return
            print(f"   healthy after {time.perf_counter() - started:.1f} s", flush=True)
            body = work / server.body_file
            status, answer = http("POST", base + server.path, body.read_bytes())
            problem = f"HTTP {status}: {answer[:160]!r}" if status != 200 else None
            if problem is None and server.check is not None:
                problem = server.check(answer)
            if problem:
                server.not_run = f"wrong answer: {problem}"
                return
            run_wrk(wrk, base + server.path, body, 1, 8, args.warmup, wrk_cpus)
            server.load_avg = os.getloadavg()
            for threads, conns in LOADS:
                r = run_wrk(wrk, base + server.path, body, threads, conns, args.duration, wrk_cpus)
                load = Load(
                    connections=conns,
                    threads=threads,
                    rps=r["requests"] / (r["duration_us"] / 1e6),
                    p50_ms=r["p50_us"] / 1000,
                    p99_ms=r["p99_us"] / 1000,
                    non_2xx=r["non_2xx"],
                    socket_errors=r["connect_errors"] + r["read_errors"] + r["write_errors"],
                    timeouts=r["timeouts"],
                    requests=r["requests"],
                )
                server.loads.append(load)
                print(
                    f"   c={conns:<3} {load.rps:>9,.0f} req/s  p50 {load.p50_ms:7.2f} ms  "
                    f"p99 {load.p99_ms:7.2f} ms  non-2xx {load.non_2xx}",
                    flush=True,
                )
        except Exception as exc:  # one server's failure must not end the whole benchmark
            server.not_run = f"{type(exc).__name__}: {exc}"[:300]
            server.loads = []
        finally:
            stop(proc)


# ------------------------------------------------------------------------------------ reporting


def at(server: Server, conns: int) -> Load | None:
    return next((ld for ld in server.loads if ld.connections == conns), None)


def ratios(by_key: dict[str, Server]) -> tuple[list[str], bool]:
    """Lines comparing Shipyard with the best peer and the ceiling; and whether all targets hold."""
    ours = [s for k in SHIPYARD if (s := by_key.get(k)) and at(s, 64)]
    peers = [s for k in PEERS if (s := by_key.get(k)) and at(s, 64)]
    hello = by_key.get("hello")
    if not ours:
        return ["Shipyard did not run: no ratios."], False
    best = max(ours, key=lambda s: at(s, 64).rps)
    b64 = at(best, 64)
    lines, ok = [], True

    def verdict(met: bool) -> str:
        nonlocal ok
        ok &= met
        return "met" if met else "**missed**"

    if peers:
        peer = max(peers, key=lambda s: at(s, 64).rps)
        p64 = at(peer, 64)
        x = b64.rps / p64.rps
        lines.append(
            f"- req/s at c=64, {best.label} vs the best peer ({peer.label}): "
            f"**{x:.1f}×** ({b64.rps:,.0f} vs {p64.rps:,.0f}; target ≥ 5×: {verdict(x >= 5)})"
        )
        low = min(peers, key=lambda s: at(s, 64).p99_ms)
        l64 = at(low, 64)
        lines.append(
            f"- p99 at c=64, {best.label} vs the best peer p99 ({low.label}): "
            f"**{b64.p99_ms:.1f} ms vs {l64.p99_ms:.1f} ms** "
            f"(target no worse: {verdict(b64.p99_ms <= l64.p99_ms)})"
        )
        ours1 = [s for s in ours if at(s, 1)]
        peers1 = [s for s in peers if at(s, 1)]
        if ours1 and peers1:
            o = min(ours1, key=lambda s: at(s, 1).p50_ms)
            p = min(peers1, key=lambda s: at(s, 1).p50_ms)
            o1, q1 = at(o, 1).p50_ms, at(p, 1).p50_ms
            lines.append(
                f"- p50 at c=1, {o.label} vs the best peer ({p.label}): **{o1:.2f} ms vs {q1:.2f} ms** "
                f"= {o1 / q1:.0%} (target ≤ 50 %: {verdict(o1 <= q1 / 2)})"
            )
    else:
        lines.append("- no peer ran: no comparison with peers.")
        ok = False
    if hello and at(hello, 64):
        share = b64.rps / at(hello, 64).rps
        lines.append(
            f"- req/s at c=64, {best.label} vs the bare ASGI hello-world: "
            f"**{share:.0%}** (target ≥ 50 %: {verdict(share >= 0.5)})"
        )
    nonzero = [
        f"{s.label} c={ld.connections}: {ld.non_2xx}" for s in by_key.values() for ld in s.loads if ld.non_2xx
    ]
    if nonzero:
        lines.append(f"- non-2xx answers: {'; '.join(nonzero)}.")
    return lines, ok


def table(servers_: list[Server], conns: int) -> list[str]:
    lines = [
        f"Concurrency {conns} (`wrk -t{dict((c, t) for t, c in LOADS)[conns]} -c{conns}`):",
        "",
        "| server | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in servers_:
        ld = at(s, conns)
        if ld is None:
            lines.append(f"| {s.label} | not run: {s.not_run or 'no result'} | | | |")
            continue
        extra = ""
        if ld.socket_errors or ld.timeouts:
            extra = f" (+{ld.socket_errors} socket errors, {ld.timeouts} timeouts)"
        lines.append(
            f"| {s.label} | {ld.rps:,.0f} | {ld.p50_ms:.2f} | {ld.p99_ms:.2f} | {ld.non_2xx:,}{extra} |"
        )
    return [*lines, ""]


def report(servers_: list[Server], args: argparse.Namespace, pin: str) -> tuple[list[str], bool]:
    by_key = {s.key: s for s in servers_}
    ratio_lines, ok = ratios(by_key)
    lines = [
        "Diabetes Ridge model (alpha 0.5), `POST` of two rows, one server process each, load from "
        f"wrk {args.duration:g} s per concurrency after a {args.warmup:g} s warm-up; {pin}. "
        "Latencies as wrk measures them (closed loop). Absolute numbers on a shared 2-core machine "
        "are noisy; the ratios within one run are the figures.",
        "",
        *[ln for c in (1, 8, 64) for ln in table(servers_, c)],
        "Shipyard against the others (Shipyard's better variant at c=64 by req/s; targets from the brief):",
        "",
        *ratio_lines,
        "",
        "How each server was started:",
        "",
        *[f"- {s.label}: {s.settings or 'not run'}" for s in servers_],
        "",
        "Load average (1/5/15 min) when each server's measurement started: "
        + "; ".join(
            f"{s.label} {s.load_avg[0]:.2f}/{s.load_avg[1]:.2f}/{s.load_avg[2]:.2f}"
            for s in servers_
            if s.load_avg
        )
        + ". See benchmarks/serving/README.md.",
    ]
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = ensure_wrk()
    if wrk is None:
        print("wrk is missing: nothing can be measured", file=sys.stderr)
        return 2
    wanted = args.servers.split(",") if args.servers else None
    aml = ensure_azureml_venv() if not wanted or "azureml" in wanted else (None, "not selected")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    logs = RESULTS / f"logs-{stamp}"
    logs.mkdir()
    server_cpus, wrk_cpus = cpu_split(args.no_pin)
    pin = (
        f"server pinned to CPU {sorted(server_cpus)}, wrk to CPU {sorted(wrk_cpus)}"
        if server_cpus
        else "no CPU pinning"
    )
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-serving-") as tmp:
        work = Path(tmp)
        _, expected = prepare(work)
        todo = servers(work, expected, aml)
        if wanted:
            todo = [s for s in todo if s.key in wanted]
        for server in todo:
            if server.not_run is None:
                bench(server, work, wrk, args, logs)
            if server.not_run:
                print(f"   {server.label}: not run: {server.not_run}", flush=True)
    lines, ok = report(todo, args, pin)
    raw = {
        "stamp": stamp,
        "duration_s": args.duration,
        "pinning": pin,
        "servers": [
            {"key": s.key, "label": s.label, "settings": s.settings, "not_run": s.not_run,
             "load_avg": s.load_avg, "loads": [ld.__dict__ for ld in s.loads]}
            for s in todo
        ],
    }  # fmt: skip
    (RESULTS / f"serving-{stamp}.json").write_text(json.dumps(raw, indent=2))
    command = "make bench-serving"
    if args.duration != 15:
        command += f" (--duration {args.duration:g})"
    if not args.no_docs and not wanted:
        write_section("Serving", lines, command)
    print()
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
