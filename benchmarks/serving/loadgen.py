"""The load side of bench_serving.py: wrk (found or installed), the CPU split between server and wrk,
one wrk run with post.lua and its summary as a dict."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOADS = [(1, 1), (2, 8), (2, 64)]  # (wrk threads, connections)


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


def cpu_split(no_pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, wrk CPUs): the server gets the last CPU, wrk the others."""
    cpus = sorted(os.sched_getaffinity(0))
    if no_pin or len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


def run_wrk(wrk: str, url: str, body: Path, threads: int, conns: int, seconds: float, cpus) -> dict:
    cmd = [
        wrk, f"-t{threads}", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "--latency",
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
