"""Benchmark the scoring server beside its peers, under load from wrk (a separate native tool).

Servers, one at a time, each with one worker on a free port of 127.0.0.1, all scoring the diabetes
Ridge model (alpha 0.5, trained here from examples/diabetes/data/diabetes.csv) for a request of
two rows:

1. Shipyard, batching off              `python -m shipyard.serving --bundle B --settings {"auth": false}`
2. Shipyard, batching on               the same with `"batching": {"max_batch_size": 64, "max_latency_ms": 2}`
3. Azure ML inference server           `azmlinfsrv --entry_script score.py` (own venv under .venvs/)
4. MLflow scoring server               `mlflow models serve --env-manager local --workers 1`
5. Bare ASGI hello-world               uvicorn + uvloop + httptools, fixed JSON: the ceiling
6. Bare RSGI hello-world on granian    the other HTTP stack considered (own venv under .venvs/)

Each server: wait for health, check one answer against the model, warm up, then wrk at
concurrency 1, 8 and 64. By default the server is pinned to one CPU and wrk to the others, so the
load generator does not steal the server's core. Writes the "## Serving" section of
docs/benchmarks.md and raw results under benchmarks/serving/results/. Run with `make bench-serving`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# benchmarks/report.py, and beside this script: servers.py (the servers), loadgen.py (wrk),
# reporting.py (tables and ratios).
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(HERE))
from loadgen import LOADS, Load, cpu_split, ensure_wrk, run_wrk  # noqa: E402
from report import write_section  # noqa: E402
from reporting import report  # noqa: E402
from servers import (  # noqa: E402
    PEERS,
    SHIPYARD,
    Server,
    ensure_azureml_venv,
    ensure_granian_venv,
    free_port,
    http,
    prepare,
    servers,
    stop,
    wait_healthy,
)

RESULTS = HERE / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=15, help="seconds per load (default 15)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up load (default 2)")
    parser.add_argument(
        "--servers", help=f"comma list of {','.join([*SHIPYARD, *PEERS, 'hello', 'hello-granian'])}"
    )
    parser.add_argument("--startup-timeout", type=float, default=120, help="seconds to wait for health")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server and wrk to CPUs")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    return parser.parse_args(argv)


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = ensure_wrk()
    if wrk is None:
        print("wrk is missing: nothing can be measured", file=sys.stderr)
        return 2
    wanted = args.servers.split(",") if args.servers else None
    aml = ensure_azureml_venv() if not wanted or "azureml" in wanted else (None, "not selected")
    granian = ensure_granian_venv() if not wanted or "hello-granian" in wanted else (None, "not selected")
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
        todo = servers(work, expected, aml, granian)
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
