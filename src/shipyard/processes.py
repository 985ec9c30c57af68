"""Processes on this machine that outlive the command starting them (scoring servers, Ray heads):
starting one detached, telling whether a pid still runs and which process it is, and stopping it.

A detached process gets its own session, so it survives the CLI that started it and can be
stopped as a process group (what it spawned goes with it). A pid alone is weak evidence: a dead,
unreaped child still answers `kill(pid, 0)`, and a pid can be reused by an unrelated process, so
liveness looks at the process state and callers compare the kernel's start time of the process
(`process_start`) or its command line (`command_line`) with what they recorded. Linux procfs
gives the detail; without it (macOS) `kill(pid, 0)` is all that can be known.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

_POLL_S = 0.05
KILL_WAIT_S = 5.0  # after SIGKILL, how long a process may take to be gone
# Children started by this process, so they are reaped (a dead, unreaped child is a zombie that
# os.kill(pid, 0) still reports as alive).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def spawn_detached(
    argv: Sequence[str], *, log_path: Path, env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session, stdin from /dev/null, stdout and stderr appended to
    `log_path`; it keeps running after this process exits."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    return proc


def process_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    if pid <= 0:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
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


def command_line(pid: int) -> bytes | None:
    """The NUL-separated command line of `pid` (procfs), or None when it cannot be read. A process
    in the middle of exec shows an empty one for a moment."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """`<boot id>:<start ticks>` of a running process (None without procfs, or when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    # Field 22 (starttime) counts from the one after the parenthesised command name.
    fields = stat.rsplit(")", 1)[-1].split()
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None


def process_started_at(pid: int) -> float | None:
    """The epoch time a running process started (procfs), or None when it cannot be told."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        btime = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        ticks = int(stat.rsplit(")", 1)[-1].split()[19])
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def signal_group(pid: int, sig: int) -> None:
    """Send `sig` to the process group `pid` leads (what it spawned too), else to `pid` alone;
    never to our own group. No error when it is gone or not ours to signal."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        pgid = None
    try:
        if pgid == pid and pgid != os.getpgrp():
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for `pid` to end; True once it has."""
    deadline = time.monotonic() + timeout_s
    while process_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


def stop_process(pid: int, grace_s: float) -> bool:
    """Stop the detached process `pid` and its group: SIGTERM, up to `grace_s` to exit, then
    SIGKILL. True once it is gone (also when it already was); never signals this process."""
    if pid <= 0 or pid == os.getpid():
        return True  # kill(0, ...) would be our own group
    try:
        if not process_alive(pid):
            return True
        signal_group(pid, signal.SIGTERM)
        if wait_gone(pid, grace_s):
            return True
        signal_group(pid, signal.SIGKILL)
        return wait_gone(pid, KILL_WAIT_S)
    finally:
        child = _CHILDREN.get(pid)
        if child is not None and child.poll() is not None:  # reaped: forget it
            del _CHILDREN[pid]
