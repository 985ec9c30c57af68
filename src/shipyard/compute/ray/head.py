"""A local Ray cluster for laptops and tests: one head node started with `ray start --head --block`.

Why `--block` in a child process of our own (its own session) rather than a daemonised
`ray start`: `ray stop` stops every Ray process of the user on the machine — other clusters, a
notebook's — while a blocking head is one process we own: SIGTERM to it takes its GCS, raylet,
dashboard and workers down with it. What survives (a worker stuck in user code) is found by the
cluster's own temp folder in its command line and killed, and nothing else is touched.

Every port is picked free on 127.0.0.1 (GCS, dashboard, Ray client, dashboard agent), so several
clusters (two workspaces, CI jobs) live side by side. The temp folder is short on purpose: Ray
puts Unix sockets in it, whose paths are limited to 107 bytes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from shipyard.compute.ray.jobs_api import dashboard_up
from shipyard.errors import ConfigError, ShipyardError
from shipyard.processes import command_line, process_alive, spawn_detached, stop_process

START_TIMEOUT_S = 90.0
STOP_GRACE_S = 5.0  # then the head's group, and every other process of the cluster, is killed


def ray_executable() -> str:
    """The `ray` command beside this Python (the venv Shipyard runs in), else on PATH."""
    beside = Path(sys.executable).with_name("ray")
    if beside.is_file():
        return str(beside)
    found = shutil.which("ray")
    if found:
        return found
    raise ConfigError(
        "Ray is not installed: pip install 'shipyard[ray]' (ray[default], which has the dashboard "
        "and the Jobs API) into the environment Shipyard runs in"
    )


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start_head(name: str, log_dir: Path, num_cpus: int | None) -> dict[str, Any]:
    """Start a head node; returns its runtime record (pid, ports, temp dir, addresses)."""
    ray = ray_executable()
    gcs, dashboard, client, agent = _free_ports(4)
    temp_dir = tempfile.mkdtemp(prefix=f"sy-ray-{name[:12]}-")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "head.log"
    argv = [
        ray,
        "start",
        "--head",
        "--block",
        "--disable-usage-stats",
        "--node-ip-address=127.0.0.1",
        f"--port={gcs}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        f"--ray-client-server-port={client}",
        f"--dashboard-agent-listen-port={agent}",
        f"--temp-dir={temp_dir}",
    ]
    if num_cpus is not None:
        argv.append(f"--num-cpus={num_cpus}")
    proc = spawn_detached(argv, log_path=log_path, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    runtime: dict[str, Any] = {
        "pid": proc.pid,
        "temp_dir": temp_dir,
        "gcs_address": f"127.0.0.1:{gcs}",
        "dashboard_url": f"http://127.0.0.1:{dashboard}",
        "client_address": f"ray://127.0.0.1:{client}",
        "log_path": str(log_path),
        "num_cpus": num_cpus,
    }
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stop_head(runtime)
            raise ShipyardError(
                f"the Ray head for {name} exited with code {proc.returncode} while starting; "
                f"log {log_path}, last lines:\n{_tail(log_path)}"
            )
        if dashboard_up(runtime["dashboard_url"]):
            return runtime
        time.sleep(0.5)
    stop_head(runtime)
    raise ShipyardError(
        f"the Ray head for {name} did not answer on {runtime['dashboard_url']} within "
        f"{START_TIMEOUT_S:g}s; log {log_path}, last lines:\n{_tail(log_path)}"
    )


def _is_head(pid: int, temp_dir: str) -> bool:
    """`pid` is still this cluster's `ray start --head` (not a process that reused the pid)."""
    cmdline = command_line(pid)
    return cmdline is not None and process_alive(pid) and f"--temp-dir={temp_dir}".encode() in cmdline


def head_alive(runtime: dict[str, Any]) -> bool:
    """The head process runs (a busy dashboard that answers slowly does not make it dead)."""
    pid, temp_dir = runtime.get("pid"), runtime.get("temp_dir")
    return bool(pid and temp_dir and _is_head(int(pid), str(temp_dir)))


def cluster_pids(temp_dir: str) -> list[int]:
    """Processes whose command line names the cluster's temp folder (Linux: /proc)."""
    # Ray's processes name it as an option value or through their session folder; a shell or
    # editor that merely mentions the path is left alone.
    needles = (f"={temp_dir}".encode(), f"{temp_dir}/session_".encode())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        cmdline = command_line(int(entry.name))
        if cmdline is not None and any(n in cmdline for n in needles):
            found.append(int(entry.name))
    return [pid for pid in found if pid != os.getpid()]


def stop_head(runtime: dict[str, Any]) -> None:
    """Stop the head and every process of this cluster (nothing of other clusters)."""
    pid, temp_dir = runtime.get("pid"), runtime.get("temp_dir")
    if pid and temp_dir and _is_head(int(pid), str(temp_dir)):  # never a reused pid
        stop_process(int(pid), STOP_GRACE_S)
    if temp_dir:
        left = cluster_pids(temp_dir)
        for other in left:
            try:
                os.kill(other, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 10
        while any(process_alive(p) for p in left) and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
