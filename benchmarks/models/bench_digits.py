"""Benchmark the digits CNN (examples/digits): training one process vs Ray Train workers, serving
with micro-batching off vs on, and the scoring image's size over the base.

1. Training. The example without its sweep (lr 0.01, --epochs), `shipyard run --until register`
   with the load check off, so the train step's duration is the script's: on the `local` target
   (one process), and on a local 2-CPU Ray cluster with `train.distributed.workers` 1 and 2.
   Each variant runs --repeat times, alternating; the median is reported.
2. Serving. The registered model as an MLflow model bundle (pyfunc; the CNN's input is a float32
   tensor (-1, 8, 8)), `python -m shipyard.serving` with one worker, batching off and on
   (max_batch_size 64, max_latency_ms 2), wrk at c=1/8/64 with one image per request, the server
   pinned to one CPU and wrk to the other. Every answer is checked first (the image's digit).
3. Image. `build_image` of the same bundle on the local base image (scripts/build-base-image.sh)
   with podman: the size over the base (CPU-only torch).

Writes the "Digits (PyTorch CNN)" section of docs/benchmarks.md. Run: `make bench-digits`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "benchmarks" / "serving")]

from loadgen import LOADS, cpu_split, ensure_wrk, run_wrk  # noqa: E402
from report import write_section  # noqa: E402
from servers import free_port, http, stop, wait_healthy  # noqa: E402

SHIPYARD = str(Path(sys.executable).parent / "shipyard")
BATCHING = {"max_batch_size": 64, "max_latency_ms": 2}
BASE = "localhost/shipyard-base:bookworm"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2, help="training runs per variant (median)")
    parser.add_argument("--duration", type=float, default=10, help="seconds per serving load")
    parser.add_argument("--no-image", action="store_true", help="skip the image build")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    return parser.parse_args(argv)


def project(dest: Path, epochs: int, *, pyfunc: bool = False, **train: object) -> Path:
    leftovers = shutil.ignore_patterns(".shipyard", "outputs", "__pycache__")
    shutil.copytree(ROOT / "examples" / "digits", dest, ignore=leftovers)
    cfg = dest / "shipyard.yaml"
    data = yaml.safe_load(cfg.read_text())
    del data["train"]["sweep"]
    data["train"]["parameters"] = {"lr": 0.01, "epochs": epochs}
    data["train"].update(train)
    data["registry"]["load_check"] = False
    if pyfunc:  # the MLflow model itself, served from /invocations (rows: batching applies)
        data["deployment"].update(entry_script=None, input_sample=None)
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def shipyard_run(proj: Path, ws: Path, until: str) -> dict:
    out = subprocess.run(
        [SHIPYARD, "run", "--workspace", str(ws), "--until", until, "--no-cache", "-o", "json"],
        cwd=proj, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"shipyard run failed: {(out.stdout + out.stderr)[-2000:]}")
    return json.loads(out.stdout)


def train_seconds(proj: Path, ws: Path) -> float:
    summary = shipyard_run(proj, ws, "train")
    [train] = [s for s in summary["steps"] if s["step"] == "train"]
    return float(train["duration_s"])


def bench_training(root: Path, args: argparse.Namespace) -> tuple[list[str], Path]:
    from shipyard.compute import clusters
    from shipyard.config.models import WorkspaceSettings
    from shipyard.workspace import Workspace

    ws = root / "ws"
    variants = {
        "one process (`local`)": project(root / "local", args.epochs),
        "Ray Train, 1 worker": project(
            root / "ray1", args.epochs, compute="bench", distributed={"workers": 1}
        ),
        "Ray Train, 2 workers (DDP, gloo)": project(
            root / "ray2", args.epochs, compute="bench", distributed={"workers": 2}
        ),
    }
    workspace = Workspace.get_or_create(WorkspaceSettings(root=str(ws)))
    clusters.create(workspace, "bench", type_="ray", num_cpus=2, idle_minutes=60)
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(args.repeat):
            for name, proj in variants.items():
                times[name].append(train_seconds(proj, ws))
                print(f"   train, {name}: {times[name][-1]:.1f} s", flush=True)
    finally:
        clusters.stop(workspace, "bench")
    shipyard_run(variants["one process (`local`)"], ws, "register")  # version 1, served below
    base = statistics.median(times["one process (`local`)"])
    lines = [
        f"Training ({args.epochs} epochs, 1,437 images, batch 64; the train step's duration, median of "
        f"{args.repeat}, the load check off):",
        "",
        "| variant | train step | vs one process |",
        "|---|---|---|",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.1f} s | {median / base:.2f}× |")
    lines += [
        "",
        "On Ray the step pays a fixed cost before the first epoch (job submission, the runtime "
        "environment, the TorchTrainer's workers and their process group): the difference between "
        "one Ray worker and one process. Two workers on this 2-core machine share the cores the "
        "single process already used, so they gain little; the figure shows what distributed "
        "training costs here, not a speed-up. The same script and setting scale on a cluster with "
        "more cores or GPUs.",
    ]
    return lines, ws


def package(proj: Path, ws: Path) -> Path:
    """The bundle of digits-cnn version 1 as `proj`'s deployment section packages it."""
    out = subprocess.run(
        [SHIPYARD, "package", "digits-cnn:1", "--project", str(proj), "--workspace", str(ws), "-o", "json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"shipyard package failed: {(out.stdout + out.stderr)[-2000:]}")
    return Path(json.loads(out.stdout)["path"])


def bench_serving(bundle: Path, work: Path, args: argparse.Namespace) -> list[str]:
    import pandas as pd

    wrk = ensure_wrk()
    if wrk is None:
        return ["Serving: not run (wrk missing)."]
    df = pd.read_csv(ROOT / "examples" / "digits" / "data" / "digits.csv")
    image = df.drop(columns="label").iloc[7].to_numpy().reshape(8, 8).tolist()
    label = int(df["label"].iloc[7])
    pixels = [float(v) for row in image for v in row]
    body = work / "image.json"
    server_cpus, wrk_cpus = cpu_split(False)
    rows = ["| batching | c | req/s | p50 ms | p99 ms | non-2xx |", "|---|---|---|---|---|---|"]
    for mode, settings in (("off", {"auth": False}), ("on", {"auth": False, "batching": BATCHING})):
        settings_file = work / f"{mode}.json"
        settings_file.write_text(json.dumps(settings))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [
            sys.executable, "-m", "shipyard.serving", "--bundle", str(bundle), "--host", "127.0.0.1",
            "--port", str(port), "--settings", str(settings_file),
        ]  # fmt: skip
        with (work / f"server-{mode}.log").open("w") as log:
            pin = (lambda: os.sched_setaffinity(0, server_cpus)) if server_cpus else None
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=pin
            )
        try:
            problem = wait_healthy(proc, base + "/", 120)
            if problem:
                raise RuntimeError(f"server (batching {mode}): {problem}")
            # The Open Inference Protocol route: its rows go through the micro-batcher when on.
            _, meta = http("GET", f"{base}/v2/models/digits-cnn")
            [spec] = json.loads(meta)["inputs"]
            tensor = {"name": spec["name"], "shape": [1, 8, 8], "datatype": spec["datatype"], "data": pixels}
            body.write_text(json.dumps({"inputs": [tensor]}))
            infer = f"{base}/v2/models/digits-cnn/infer"
            status, answer = http("POST", infer, body.read_bytes())
            logits = json.loads(answer)["outputs"][0]["data"] if status == 200 else []
            if len(logits) != 10 or max(range(10), key=lambda i: logits[i]) != label:
                raise RuntimeError(f"wrong answer from the server: {status} {answer[:200]!r}")
            run_wrk(wrk, infer, body, 1, 8, 2, wrk_cpus)
            for threads, conns in LOADS:
                r = run_wrk(wrk, infer, body, threads, conns, args.duration, wrk_cpus)
                rps = r["requests"] / (r["duration_us"] / 1e6)
                p50, p99 = r["p50_us"] / 1000, r["p99_us"] / 1000
                rows.append(f"| {mode} | {conns} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {r['non_2xx']} |")
                print(f"   serving, batching {mode}, c={conns}: {rps:,.0f} req/s", flush=True)
        finally:
            stop(proc)
    return [
        "Serving (the registered model as an MLflow model bundle, one 8x8 image per request to the V2 "
        "infer route, whose rows go through the micro-batcher when it is on; "
        f"1 worker pinned to one CPU, wrk on the other, {args.duration:g} s per point; batching on = "
        f"`{json.dumps(BATCHING)}`):",
        "",
        *rows,
    ]


def bench_image(ws_root: Path, bundle: Path) -> list[str]:
    from shipyard.config.models import WorkspaceSettings
    from shipyard.config.targets import ImageConfig
    from shipyard.images import build_image
    from shipyard.workspace import Workspace

    subprocess.run(["bash", str(ROOT / "scripts" / "build-base-image.sh")], check=True, capture_output=True)
    ws = Workspace.get_or_create(WorkspaceSettings(root=str(ws_root)))
    info = build_image(ws, bundle, ImageConfig(base=BASE, builder="podman"))

    def size(tag: str) -> float:
        cmd = ["podman", "image", "inspect", "--format", "{{.Size}}", tag]
        out = subprocess.run(cmd, capture_output=True, text=True)
        return int(out.stdout.strip()) / 1e6

    over = size(info.tag) - size(BASE)
    subprocess.run(["podman", "rmi", info.tag], capture_output=True)
    return [
        f"Image: the example's scoring image (score.py bundle) is {over:,.0f} MB over the base "
        f"({size(BASE):,.0f} MB): torch 2.13.0's CPU build and numpy (serving-requirements.txt) with "
        "the serving runtime, installed offline from wheels downloaded on the host.",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-digits-") as tmp:
        root = Path(tmp)
        lines, ws = bench_training(root, args)
        served = package(project(root / "pyfunc", args.epochs, pyfunc=True), ws)
        lines += ["", *bench_serving(served, root, args)]
        if not args.no_image:  # the example's own deployment: score.py, torch only
            lines += ["", *bench_image(ws, package(root / "local", ws))]
    print("\n".join(lines))
    if not args.no_docs:
        write_section("Digits (PyTorch CNN)", lines, "make bench-digits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
