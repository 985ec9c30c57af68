"""Detached processes: started in their own session, alive until stopped, told apart from a reused
pid by their start time, and stopped by pid with their whole group."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from shipyard.processes import (
    command_line,
    process_alive,
    process_start,
    spawn_detached,
    stop_process,
    wait_gone,
)

# Starts a child of its own and prints the child's pid: both belong to the detached group.
SLEEPER = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_detached_process_and_what_it_started_are_stopped_by_pid(tmp_path: Path) -> None:
    log = tmp_path / "log"
    proc = spawn_detached([sys.executable, "-c", SLEEPER], log_path=log, env=os.environ)
    try:
        deadline = time.monotonic() + 30
        while not log.read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(log.read_text().split()[0])
        assert os.getpgid(proc.pid) == proc.pid != os.getpgrp()  # its own session and group
        assert process_alive(proc.pid) and process_start(proc.pid) is not None
        assert b"time.sleep(60)" in (command_line(proc.pid) or b"")
        assert stop_process(proc.pid, grace_s=5)
        assert not process_alive(proc.pid)
        assert wait_gone(child, 5)  # the group went with it
    finally:
        proc.kill()
    assert stop_process(proc.pid, grace_s=5)  # already gone: nothing to do
    assert stop_process(os.getpid(), grace_s=5) and process_alive(os.getpid())  # never ourselves
    assert not process_alive(0)
