"""The local process deploy target: the scoring server as a detached child process.

``start_server`` launches ``python -m shipyard.serving`` detached (shipyard.processes: its own
session, so it outlives the CLI and can be stopped as a process group), ``wait_healthy`` waits
until ``GET /`` answers, and ``stop_server`` sends SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from shipyard.crashpoint import pause_at
from shipyard.errors import DeploymentError
from shipyard.processes import command_line, process_alive, spawn_detached, stop_process
from shipyard.secrets.environ import explicit_environment
from shipyard.venvs.cache import activated

PORT_FILE_TIMEOUT_S = 30.0
_POLL_S = 0.1


@dataclass(frozen=True)
class LocalProcess:
    """A running scoring server: its process id, bound port, base URL and log file."""

    pid: int
    port: int
    url: str
    log_path: Path | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, for endpoint records."""
        return {"pid": self.pid, "port": self.port, "url": self.url, "log_path": str(self.log_path)}


# Servers started by this process by URL, so wait_healthy can find their pid and log by itself.
_STARTED: dict[str, LocalProcess] = {}


def log_tail(path: Path | None, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ("" if there is none)."""
    if path is None:
        return ""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines)).rstrip("\n")
    except OSError:
        return ""


def _with_tail(message: str, log_path: Path | None) -> str:
    tail = log_tail(log_path)
    if not tail:
        return message
    return f"{message}\n--- last lines of {log_path} ---\n{tail}"


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def start_server(
    bundle_dir: Path,
    *,
    host: str,
    port: int,
    log_path: Path,
    deployment_id: str,
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    on_spawn: Callable[[int], None] | None = None,
    python: Path | None = None,
) -> LocalProcess:
    """Launch the scoring server for ``bundle_dir`` detached; return once its port is bound.

    ``port=0`` picks a free port. The model may still be loading: call ``wait_healthy`` next.
    ``env`` adds to (and overrides) this process's environment; ``extra_args`` go to the server
    (``--settings``, ``--keys-file``, ``--capture-dir``). ``on_spawn(pid)`` runs right after the
    process exists (to record it before it can outlive this one); if it raises, the server is
    stopped. The server's command line names ``deployment_id``: ``find_servers`` finds it by that.
    ``python`` is the interpreter (default: this one); another one is a virtual environment's, run
    as activated (shipyard/venvs/serving.py chooses it).
    """
    bundle_dir = Path(bundle_dir).resolve()
    if not (bundle_dir / "manifest.json").is_file():
        raise DeploymentError(f"{bundle_dir} is not a bundle folder: manifest.json not found")
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shipyard-port-") as tmp:
        port_file = Path(tmp) / "port"
        command = [
            str(python or sys.executable),
            "-m",
            "shipyard.serving",
            "--bundle",
            str(bundle_dir),
            "--host",
            host,
            "--port",
            str(port),
            "--port-file",
            str(port_file),
            "--deployment-id",
            deployment_id,
            *(extra_args or []),
        ]
        # Named variables only: a token in the CLI's environment must not live on in the server.
        child_env = explicit_environment({**(env or {}), "PYTHONUNBUFFERED": "1"})
        if python is not None and Path(python) != Path(sys.executable):
            child_env = activated(child_env, Path(python))
        proc = spawn_detached(command, log_path=log_path, env=child_env)
        pause_at("deploy:spawned")
        if on_spawn is not None:
            try:
                on_spawn(proc.pid)
            except BaseException:
                stop_server(proc.pid)
                raise
        deadline = time.monotonic() + PORT_FILE_TIMEOUT_S
        while not port_file.exists():
            if proc.poll() is not None:
                raise DeploymentError(
                    _with_tail(
                        f"the server exited with code {proc.returncode} before binding a port", log_path
                    )
                )
            if time.monotonic() > deadline:
                stop_server(proc.pid)
                raise DeploymentError(
                    _with_tail(f"the server did not bind a port within {PORT_FILE_TIMEOUT_S:.0f} s", log_path)
                )
            time.sleep(_POLL_S)
        bound = int(port_file.read_text().strip())
    started = LocalProcess(
        pid=proc.pid, port=bound, url=f"http://{_url_host(host)}:{bound}", log_path=log_path
    )
    _STARTED[started.url] = started
    return started


def wait_healthy(
    url: str,
    timeout_s: float,
    expected_deployment_id: str | None = None,
    *,
    pid: int | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll ``GET {url}/`` until it answers 200 (with the expected deployment id, if given).

    Raises DeploymentError with the last error and the log tail on timeout, or at once if the
    process ``pid`` has exited. For a server started by ``start_server`` in this process, ``pid``
    and ``log_path`` default to that server's.
    """
    started = _STARTED.get(url.rstrip("/"))
    if started is not None:
        pid = started.pid if pid is None else pid
        log_path = started.log_path if log_path is None else log_path
    deadline = time.monotonic() + timeout_s
    last_error = "no attempt made"
    delay = _POLL_S
    with httpx.Client(timeout=httpx.Timeout(2.0), trust_env=False) as client:
        while True:
            if pid is not None and not process_alive(pid):
                raise DeploymentError(
                    _with_tail(f"the server (pid {pid}) exited before becoming healthy", log_path)
                )
            try:
                # Naming the deployment gets its id back even with auth on (serving/app.py).
                named = {"X-Shipyard-Deployment-Id": expected_deployment_id} if expected_deployment_id else {}
                response = client.get(url.rstrip("/") + "/", headers=named)
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    try:
                        body = response.json()
                    except ValueError:
                        body = None
                    found = body.get("deployment_id") if isinstance(body, dict) else None
                    if expected_deployment_id is None or found == expected_deployment_id:
                        return
                    last_error = f"{url} is deployment {found!r}, expected {expected_deployment_id!r}"
                else:
                    last_error = f"GET {url}/ returned {response.status_code}: {response.text[:200]}"
            if time.monotonic() >= deadline:
                raise DeploymentError(
                    _with_tail(f"{url} did not become healthy within {timeout_s:g} s: {last_error}", log_path)
                )
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 1.0)


def _is_our_server(pid: int) -> bool:
    """Guard against pid reuse: a recorded pid must still be a shipyard.serving process. A process
    caught in the middle of exec shows an empty command line for a moment: look again, and never
    signal what cannot be identified."""
    for attempt in range(3):
        cmdline = command_line(pid)
        if cmdline is None:
            return True  # no procfs, or already gone: nothing to compare against
        if cmdline:
            return b"shipyard.serving" in cmdline
        time.sleep(0.05 * (attempt + 1))
    return False


def serving_processes() -> dict[int, str]:
    """This machine's scoring servers: pid → the deployment id on its command line (how a server
    whose pid was never recorded is found: its starter died first). Empty without procfs."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    found = {}
    for entry in entries:
        if not entry.isdigit():
            continue
        cmdline = command_line(int(entry))
        if cmdline is None:
            continue
        argv = cmdline.split(b"\0")
        if b"shipyard.serving" in argv and b"--deployment-id" in argv:
            at = argv.index(b"--deployment-id") + 1
            if at < len(argv) and argv[at]:
                found[int(entry)] = argv[at].decode(errors="replace")
    return found


def find_servers(deployment_id: str) -> list[int]:
    """The pids of this machine's scoring servers started for ``deployment_id``."""
    return sorted(pid for pid, dep in serving_processes().items() if dep == deployment_id)


def stop_server(pid: int, timeout_s: float = 10) -> None:
    """Stop a server: SIGTERM to its process group, wait up to ``timeout_s``, then SIGKILL.

    No error if the process is already gone; a pid that is no longer a scoring server is left alone.
    """
    if process_alive(pid) and not _is_our_server(pid):
        return  # the pid was reused: not ours to stop
    if not stop_process(pid, timeout_s):
        raise DeploymentError(f"process {pid} did not exit after SIGKILL")
    for url in [url for url, started in _STARTED.items() if started.pid == pid]:
        del _STARTED[url]
