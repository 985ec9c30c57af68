"""The local process deploy target: the scoring server as a detached child process.

``start_server`` launches ``python -m shipyard.serving`` in its own session (so it outlives the
CLI and can be stopped as a process group), ``wait_healthy`` waits until ``GET /`` answers, and
``stop_server`` sends SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
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
from shipyard.secrets.environ import explicit_environment

PORT_FILE_TIMEOUT_S = 30.0
_POLL_S = 0.1
# Children started by this process, so we can reap them (a dead, unreaped child is a zombie
# that os.kill(pid, 0) still reports as alive).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


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


def process_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    if pid <= 0:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            return False
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (macOS): kill(0) is all we can know
    # The state follows the parenthesised command name, which may itself contain spaces.
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


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
) -> LocalProcess:
    """Launch the scoring server for ``bundle_dir`` detached; return once its port is bound.

    ``port=0`` picks a free port. The model may still be loading: call ``wait_healthy`` next.
    ``env`` adds to (and overrides) this process's environment; ``extra_args`` go to the server
    (``--settings``, ``--keys-file``, ``--capture-dir``). ``on_spawn(pid)`` runs right after the
    process exists (to record it before it can outlive this one); if it raises, the server is
    stopped. The server's command line names ``deployment_id``: ``find_servers`` finds it by that.
    """
    bundle_dir = Path(bundle_dir).resolve()
    if not (bundle_dir / "manifest.json").is_file():
        raise DeploymentError(f"{bundle_dir} is not a bundle folder: manifest.json not found")
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shipyard-port-") as tmp:
        port_file = Path(tmp) / "port"
        command = [
            sys.executable, "-m", "shipyard.serving",
            "--bundle", str(bundle_dir),
            "--host", host,
            "--port", str(port),
            "--port-file", str(port_file),
            "--deployment-id", deployment_id,
            *(extra_args or []),
        ]  # fmt: skip
        # Named variables only: a token in the CLI's environment must not live on in the server.
        child_env = explicit_environment({**(env or {}), "PYTHONUNBUFFERED": "1"})
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env,
                start_new_session=True,
                close_fds=True,
            )
        _CHILDREN[proc.pid] = proc
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
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
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
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"shipyard.serving" in argv and b"--deployment-id" in argv:
            at = argv.index(b"--deployment-id") + 1
            if at < len(argv) and argv[at]:
                found[int(entry)] = argv[at].decode(errors="replace")
    return found


def find_servers(deployment_id: str) -> list[int]:
    """The pids of this machine's scoring servers started for ``deployment_id``."""
    return sorted(pid for pid, dep in serving_processes().items() if dep == deployment_id)


def _signal(pid: int, sig: int) -> None:
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        pgid = None
    try:
        if pgid == pid and pgid != os.getpgrp():
            os.killpg(pgid, sig)  # the server's whole group: workers it may have spawned too
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while process_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop_server(pid: int, timeout_s: float = 10) -> None:
    """Stop a server: SIGTERM to its process group, wait up to ``timeout_s``, then SIGKILL.

    No error if the process is already gone.
    """
    if pid <= 0 or pid == os.getpid():
        return  # never signal ourselves or our own process group (kill(0, ...))
    try:
        if not process_alive(pid) or not _is_our_server(pid):
            return
        _signal(pid, signal.SIGTERM)
        if not _wait_gone(pid, timeout_s):
            _signal(pid, signal.SIGKILL)
            if not _wait_gone(pid, 5.0):
                raise DeploymentError(f"process {pid} did not exit after SIGKILL")
    finally:
        child = _CHILDREN.get(pid)
        if child is not None and child.poll() is not None:  # reaped: forget it
            del _CHILDREN[pid]
            for url in [url for url, started in _STARTED.items() if started.pid == pid]:
                del _STARTED[url]
