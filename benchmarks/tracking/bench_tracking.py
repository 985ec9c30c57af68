"""Metric logging throughput: mlflow.log_metric vs shipyard.log_metric on fresh SQLite stores.

Each contender gets its own temporary folder with a fresh SQLite database; store creation is done
before timing. Rows:
- mlflow.log_metric (synchronous, MLflow's default): one database write per call;
- mlflow.log_metric(synchronous=False): MLflow's own async queue, timed with flush_async_logging;
- shipyard.log_metric: buffered; timed for the calls alone and including the final flush.
After each phase the number of metrics in the store is checked against the number of calls.

Usage: python benchmarks/tracking/bench_tracking.py [--n-mlflow 2000] [--n-shipyard 200000] [--no-docs]
(`make bench-tracking` runs it with the defaults and updates docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
from report import write_section  # noqa: E402

KEY = "loss"


@dataclass
class Result:
    name: str
    calls: int
    call_s: float
    flush_s: float = 0.0

    @property
    def call_rate(self) -> float:
        return self.calls / self.call_s

    @property
    def total_rate(self) -> float:
        return self.calls / (self.call_s + self.flush_s)


def bench_mlflow(root: Path, n: int, synchronous: bool) -> Result:
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    exp_id = MlflowClient(uri).create_experiment("bench", artifact_location=(root / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_metric("warmup", 0.0)  # first write opens connections; not part of the timing
        start = time.perf_counter()
        for i in range(n):
            mlflow.log_metric(KEY, i * 0.001, step=i, synchronous=synchronous)
        call_s = time.perf_counter() - start
        start = time.perf_counter()
        if not synchronous:
            mlflow.flush_async_logging()
        flush_s = time.perf_counter() - start
    stored = len(MlflowClient(uri).get_metric_history(run.info.run_id, KEY))
    assert stored == n, f"mlflow stored {stored} of {n} metrics"
    name = "mlflow.log_metric" + ("" if synchronous else " (synchronous=False)")
    return Result(name, n, call_s, flush_s)


def bench_shipyard(root: Path, n: int) -> Result:
    os.environ["SHIPYARD_WORKSPACE"] = str(root / ".shipyard")
    os.environ["SHIPYARD_EXPERIMENT"] = "bench"
    os.environ.pop("SHIPYARD_RUN_ID", None)
    os.chdir(root)  # no shipyard.yaml up the tree can change the workspace

    import shipyard

    with shipyard.start_run(name="bench") as run:
        shipyard.log_metric("warmup", 0.0)
        run.flush()
        log_metric = shipyard.log_metric
        start = time.perf_counter()
        for i in range(n):
            log_metric(KEY, i * 0.001, step=i)
        call_s = time.perf_counter() - start
        start = time.perf_counter()
        run.flush()
        flush_s = time.perf_counter() - start
    stored = len(run.client.get_metric_history(run.run_id, KEY))
    assert stored == n, f"shipyard stored {stored} of {n} metrics"
    return Result("shipyard.log_metric", n, call_s, flush_s)


def table(results: list[Result]) -> str:
    base = results[0]
    lines = [
        "| contender | calls | calls/s (call only) | final flush s | calls/s (incl. flush) "
        "| × sync mlflow (call / incl. flush) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| `{r.name}` | {r.calls:,} | {r.call_rate:,.0f} | {r.flush_s:.2f} | {r.total_rate:,.0f} "
            f"| {r.call_rate / base.call_rate:,.0f}× / {r.total_rate / base.total_rate:,.0f}× |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-mlflow", type=int, default=2000, help="synchronous mlflow calls")
    parser.add_argument("--n-mlflow-async", type=int, default=2000, help="0 skips the async row")
    parser.add_argument("--n-shipyard", type=int, default=200_000)
    parser.add_argument("--no-docs", action="store_true", help="don't update docs/benchmarks.md")
    args = parser.parse_args()
    import mlflow  # noqa: F401  (configures its logger on import; quiet it afterwards)

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # table-creation chatter

    cwd = os.getcwd()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        dirs = {name: Path(tmp) / name for name in ("mlflow", "mlflow-async", "shipyard")}
        for d in dirs.values():
            d.mkdir()
        results.append(bench_mlflow(dirs["mlflow"], args.n_mlflow, synchronous=True))
        if args.n_mlflow_async:
            results.append(bench_mlflow(dirs["mlflow-async"], args.n_mlflow_async, synchronous=False))
        results.append(bench_shipyard(dirs["shipyard"], args.n_shipyard))
        os.chdir(cwd)

    ship, sync = results[-1], results[0]
    ratio_call, ratio_total = ship.call_rate / sync.call_rate, ship.total_rate / sync.total_rate
    lines = [
        f"Metric logging into a fresh SQLite store, one run, one key with steps; "
        f"MLflow {mlflow.__version__}.",
        "",
        table(results),
        "",
        f"shipyard vs synchronous mlflow: **{ratio_call:,.0f}×** per call, **{ratio_total:,.0f}×** "
        "including the final flush (target ≥ 20×). The metric count in each store was checked "
        "against the number of calls. See benchmarks/tracking/README.md.",
    ]
    print(table(results))
    print(f"\nratio shipyard/mlflow: {ratio_call:,.1f}x per call, {ratio_total:,.1f}x including flush")
    if not args.no_docs:
        write_section("Tracking", lines, "make bench-tracking")
        print("updated docs/benchmarks.md")
    return 0 if ratio_total >= 20 else 1


if __name__ == "__main__":
    sys.exit(main())
