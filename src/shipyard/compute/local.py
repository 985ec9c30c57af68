"""The local target: the script runs as a subprocess of this process, with this Python.

This is what the train step always did, behind the compute interface. The process gets its own
session (process group), so `cancel` stops the script and anything it started (data loaders,
worker pools) with SIGTERM, then SIGKILL after a grace period. On Linux the script also dies with
the process that started it, even on `kill -9` of that one (PR_SET_PDEATHSIG, set in the child
before the script runs); what the script itself started is found by its run id in the
environment and stopped by the next `shipyard run` or `shipyard doctor` (pipeline/recovery.py).
Its stdout and stderr go through a pipe to a thread that writes them to the job's log file with
secret values masked: the script's raw output never touches the disk.

Jobs are tracked in the target object that started them; another process can still cancel one by
its handle (the process group id is the pid).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.compute.base import JobHandle, JobResult, JobTimeout, StepJob, tail
from shipyard.errors import NotFoundError, StepFailed
from shipyard.processes import process_alive, signal_group
from shipyard.secrets.redact import Redactor

_READER_JOIN_S = 5.0


@dataclass
class _Process:
    proc: subprocess.Popen[bytes]
    reader: threading.Thread
    log_path: Path
    started: float
    cancelled: bool = False
    ended: float | None = field(default=None)


def _copy_output(stream: object, log_path: Path, redactor: Redactor) -> None:
    """Pipe → log file, line by line (so a secret is never split across two writes)."""
    with open(log_path, "wb") as log:
        for line in iter(stream.readline, b""):  # type: ignore[attr-defined]
            if redactor:
                line = redactor.redact(line.decode("utf-8", "surrogateescape")).encode(
                    "utf-8", "surrogateescape"
                )
            log.write(line)
            log.flush()
    stream.close()  # type: ignore[attr-defined]


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec function making the child get SIGKILL when this process dies (Linux), or None.

    The signal follows the *thread* that forked, so it is only set from the main thread (which
    outlives every job it starts). The function is built here, before the fork, so the child only
    calls into libc; a parent that died before the call is caught by the getppid check."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


class LocalTarget:
    """Runs a job's script with `python` (default: the interpreter running Shipyard)."""

    name = "local"

    def __init__(self, python: str | Path | None = None, grace_s: float = 5.0):
        self.python = Path(python) if python else Path(sys.executable)
        self.grace_s = grace_s
        self._jobs: dict[str, _Process] = {}

    @classmethod
    def from_spec(cls, name: str, spec: Any, ws: Any) -> LocalTarget:
        """The built-in local target (no settings)."""
        return cls()

    def probe(self) -> str:
        """Nothing to check here: the script runs on this machine when the job starts."""
        return "configured"

    # -- what subclasses change ---------------------------------------------------------------
    def interpreter(self, job: StepJob) -> Path:
        """The Python that runs the job's script."""
        return self.python

    def base_environment(self, job: StepJob, python: Path) -> dict[str, str]:
        """The variables the process starts from, before the job's own."""
        return dict(os.environ)

    # -- the interface ------------------------------------------------------------------------------
    def environment(self, job: StepJob, python: Path) -> dict[str, str]:
        """Everything the process gets: base, the job's plain variables, inputs/outputs, secrets."""
        env = self.base_environment(job, python)
        env.update(job.env)
        env.update(
            {
                "SHIPYARD_INPUTS": json.dumps({k: str(v) for k, v in job.inputs.items()}),
                "SHIPYARD_OUTPUTS": str(job.outputs_dir),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(job.secret_env)
        return env

    def command(self, job: StepJob, python: Path, env: Mapping[str, str]) -> list[str]:
        """The argv that runs the job's script; raise here to refuse before anything starts."""
        return [str(python), str(job.script_path), *job.args]

    def submit(self, job: StepJob) -> JobHandle:
        if not job.script_path.is_file():
            raise StepFailed(f"{job.name}: script {job.script_path} does not exist")
        python = self.interpreter(job)
        env = self.environment(job, python)
        argv = self.command(job, python, env)
        job.outputs_dir.mkdir(parents=True, exist_ok=True)
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            argv,
            cwd=job.project_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: cancel reaches the script's children
            preexec_fn=_die_with_parent(),  # noqa: PLW1509 - only prctl and getppid run in the child
        )
        reader = threading.Thread(
            target=_copy_output,
            args=(proc.stdout, job.log_path, Redactor(dict(job.secret_env))),
            name=f"shipyard-log-{job.name}",
            daemon=True,
        )
        reader.start()
        job_id = uuid.uuid4().hex[:12]
        self._jobs[job_id] = _Process(proc, reader, job.log_path, time.monotonic())
        return JobHandle(
            target=self.name,
            job_id=job_id,
            name=job.name,
            log_path=job.log_path,
            pid=proc.pid,
            data={"outputs_dir": str(job.outputs_dir), "python": str(python), "argv": tuple(argv)},
        )

    def _known(self, handle: JobHandle) -> _Process | None:
        return self._jobs.get(handle.job_id)

    def status(self, handle: JobHandle) -> str:
        job = self._known(handle)
        if job is None:
            if handle.pid is not None and process_alive(handle.pid):
                return "running"
            raise NotFoundError(
                f"job {handle.job_id} ({handle.name}) was started by another process and has ended; "
                f"its log is {handle.log_path}"
            )
        code = job.proc.poll()
        if code is None:
            return "running"
        if job.cancelled:
            return "cancelled"
        return "succeeded" if code == 0 else "failed"

    def wait(self, handle: JobHandle, timeout_s: float | None = None) -> JobResult:
        job = self._known(handle)
        if job is None:
            raise NotFoundError(f"job {handle.job_id} ({handle.name}) was not started by this target object")
        try:
            code = job.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise JobTimeout(f"{handle.name} is still running after {timeout_s:g}s") from None
        job.reader.join(_READER_JOIN_S)
        if job.ended is None:
            job.ended = time.monotonic()
        return JobResult(self.status(handle), code, tail(self.logs(handle)), job.ended - job.started)

    def logs(self, handle: JobHandle) -> str:
        path = handle.log_path
        if path is None:
            return ""
        try:
            return Path(path).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def cancel(self, handle: JobHandle) -> None:
        job = self._known(handle)
        if job is None:
            if handle.pid is not None and process_alive(handle.pid):
                signal_group(handle.pid, signal.SIGTERM)
            return
        if job.proc.poll() is not None:
            return
        job.cancelled = True
        signal_group(job.proc.pid, signal.SIGTERM)
        try:
            job.proc.wait(timeout=self.grace_s)
        except subprocess.TimeoutExpired:
            signal_group(job.proc.pid, signal.SIGKILL)
            job.proc.wait()
        job.ended = time.monotonic()
        job.reader.join(_READER_JOIN_S)

    def fetch_outputs(self, handle: JobHandle, dest: Path) -> Path:
        source = Path(handle.data["outputs_dir"])
        dest = Path(dest)
        if source.resolve() != dest.resolve() and source.is_dir():
            shutil.copytree(source, dest, dirs_exist_ok=True)
        else:
            dest.mkdir(parents=True, exist_ok=True)
        return dest
