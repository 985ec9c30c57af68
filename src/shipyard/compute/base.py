"""The compute-target interface: where a pipeline step's script runs.

A step (training today) is a script with arguments, plain environment variables, secret values,
named inputs and an outputs folder: a `StepJob`. Every target (local process, isolated venv, and
later SSH, Ray and Spark: one module each) takes such a job and answers the same six calls
(`ComputeTarget`), so the pipeline never needs to know where a script ran. `run()` is the one
loop on top of them: submit, copy the log into `job.log_path` as it grows (secret values masked
by shipyard.secrets' redactor), wait, and cancel the job on its target when the user presses
Ctrl-C.

Secrets: `StepJob.secret_env` values go into the process environment and nowhere else. They are
left out of the job's repr, masked in every log line a target or `run()` writes, and never put on
a command line or into a file.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shipyard.errors import ConfigError, StepFailed, UsageError
from shipyard.secrets.redact import Redactor

if TYPE_CHECKING:
    from shipyard.config.packages import PackageSources

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
TAIL_LINES = 20
_POLL_S = 0.2


@dataclass(frozen=True)
class Distribution:
    """Run the script data-parallel on `workers` processes (only the ray target can)."""

    workers: int
    backend: str = "gloo"
    gpu: bool = False


@dataclass(frozen=True)
class StepJob:
    """One script run: what every target needs to start it, and where its log goes.

    `script` is relative to `project_dir`; `env` holds plain variables (run id, parameters,
    tracking settings); `secret_env` holds values injected into the process only. A target sets
    SHIPYARD_INPUTS (JSON of `inputs`) and SHIPYARD_OUTPUTS (`outputs_dir`) itself, with paths as
    the process sees them.
    """

    name: str
    project_dir: Path
    script: str
    log_path: Path
    outputs_dir: Path
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    inputs: Mapping[str, Path] = field(default_factory=dict)
    environment: Path | None = None  # environment spec: requirements.txt or a conda .yml
    packages: PackageSources | None = None  # where the spec's packages come from (venv target)
    timeout_s: float | None = None
    distribution: Distribution | None = None  # data-parallel workers (train.distributed)

    def __post_init__(self) -> None:
        if Path(self.script).is_absolute() or ".." in Path(self.script).parts:
            raise UsageError(
                f"job {self.name}: script {self.script!r} must be relative to the project folder"
            )
        overlap = sorted(set(self.env) & set(self.secret_env))
        if overlap:
            raise UsageError(
                f"job {self.name}: {', '.join(overlap)} set both as a plain and as a secret variable; "
                "keep each in one of them"
            )

    @property
    def script_path(self) -> Path:
        return self.project_dir / self.script


@dataclass(frozen=True)
class JobHandle:
    """A submitted job as its target knows it (target-specific detail in `data`)."""

    target: str
    job_id: str
    name: str
    log_path: Path | None = None  # set when the target writes the job's log file itself
    pid: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobResult:
    """How a job ended: its state, exit code (None when it never exited by itself) and last log lines."""

    status: str
    exit_code: int | None
    log_tail: str
    duration_s: float
    message: str | None = None  # why Shipyard stopped it (its timeout), when it did

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


class JobTimeout(StepFailed):
    """`wait` gave up: the job is still running on its target."""


class ComputeTarget(Protocol):
    name: str

    @classmethod
    def from_spec(cls, name: str, spec: Any, ws: Any) -> ComputeTarget:
        """The target `name` from its compute: settings (`spec`, a config.compute model; None for
        the built-in local and venv), with the workspace `ws` where it keeps state."""
        ...

    def probe(self) -> str:
        """Can jobs run there from here? The state `shipyard compute status` shows (`running`,
        `reachable`, or `configured` when there is nothing to check before a job); a ShipyardError
        saying why not when they cannot."""
        ...

    def submit(self, job: StepJob) -> JobHandle:
        """Start the job (or queue it) and return at once."""
        ...

    def status(self, handle: JobHandle) -> str:
        """One of STATES."""
        ...

    def wait(self, handle: JobHandle, timeout_s: float | None = None) -> JobResult:
        """Block until the job ends; JobTimeout if it is still running after `timeout_s`."""
        ...

    def logs(self, handle: JobHandle) -> str:
        """The job's output so far (stdout and stderr together), secrets masked."""
        ...

    def cancel(self, handle: JobHandle) -> None:
        """Stop the job; no error if it has already ended."""
        ...

    def fetch_outputs(self, handle: JobHandle, dest: Path) -> Path:
        """Copy what the job wrote to its outputs folder into `dest`; returns `dest`."""
        ...


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


class RunningJob:
    """A submitted job being followed: its log copied into `job.log_path` as it grows (secret
    values masked), its deadline (`job.timeout_s`), and how it ended. `run` follows one job with
    it, `compute.parallel.run_many` several side by side."""

    def __init__(self, target: ComputeTarget, job: StepJob):
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.target, self.job = target, job
        self.red = Redactor(dict(job.secret_env))
        self.handle = target.submit(job)
        # A target that writes job.log_path itself (local, venv) needs no copying.
        self.local_log = self.handle.log_path is not None and Path(self.handle.log_path) == Path(job.log_path)
        if not self.local_log:
            job.log_path.write_text("")
        self.started = time.monotonic()
        self.deadline = None if job.timeout_s is None else self.started + job.timeout_s
        self.done = False
        self._written = 0

    def ended(self) -> bool:
        """Copy what the log gained; True once the job is in a final state or past its deadline."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            return True
        if not self.local_log:
            self._copy_log()
        return self.target.status(self.handle) in FINAL_STATES

    def result(self) -> JobResult:
        """Wait for the end (until the deadline at most) and return it with secrets masked. A job
        still running at its deadline is cancelled and raises StepFailed naming the timeout."""
        remaining = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
        try:
            result = self.target.wait(self.handle, remaining)
        except JobTimeout:
            self.cancel()
            raise StepFailed(
                f"{self.job.script} ran longer than timeout_s={self.job.timeout_s:g}s on the "
                f"{self.target.name} target and was stopped; log {self.job.log_path}, last lines:\n"
                f"{tail(self.red.redact(read_log(self.job.log_path)))}"
            ) from None
        if not self.local_log:
            self._copy_log(final=True)
        self.done = True
        return JobResult(result.status, result.exit_code, self.red.redact(result.log_tail), result.duration_s)

    def cancel(self) -> None:
        """Stop the job on its target (nothing when it has already been followed to its end)."""
        if self.done:
            return
        self.done = True
        self.target.cancel(self.handle)
        if not self.local_log:
            self._copy_log(final=True)

    def _copy_log(self, final: bool = False) -> None:
        """Append what the target's log gained since the last copy to job.log_path: whole lines
        only while the job runs, so a secret printed across two polls is masked as a whole."""
        text = self.red.redact(self.target.logs(self.handle))
        upto = len(text) if final else text.rfind("\n") + 1
        if upto > self._written:
            with open(self.job.log_path, "a", encoding="utf-8") as log:
                log.write(text[self._written : upto])
            self._written = upto


def failure_message(target_name: str, job: StepJob, result: JobResult) -> str:
    """What a job that did not succeed says: exit code (or state) and the log's last non-blank
    line (a traceback's exception) first, then the log file and its last lines."""
    if result.message:
        return result.message
    what = (
        f"exited with code {result.exit_code}"
        if result.exit_code is not None
        else f"{result.status} (no exit code)"
    )
    last = next((line.strip() for line in reversed(result.log_tail.splitlines()) if line.strip()), "")
    said = f": {last[:300]}" if last else ""
    return (
        f"{job.script} {what} on the {target_name} target{said}\nlog {job.log_path}, "
        f"last lines:\n{result.log_tail}"
    )


def run(target: ComputeTarget, job: StepJob, *, check: bool = True) -> JobResult:
    """Run `job` on `target` to its end; its log ends up in `job.log_path`.

    With `check`, a job that did not succeed raises StepFailed naming the exit code and the log's
    last lines; a job running past `job.timeout_s` is cancelled and raises StepFailed. Ctrl-C
    cancels the job on its target, then re-raises.
    """
    if job.distribution is not None and not getattr(target, "distributes", False):
        raise ConfigError(
            f"{job.name}: train.distributed runs on Ray Train workers, and compute {target.name!r} is not a "
            "Ray cluster: set train.compute to a ray compute"
        )
    running = RunningJob(target, job)
    try:
        if not running.local_log:  # stream a remote log while the job runs
            while not running.ended():
                time.sleep(_POLL_S)
        result = running.result()
    except BaseException:
        # Ctrl-C (KeyboardInterrupt) or any error here: do not leave the job running on its target.
        running.cancel()
        raise
    if check and not result.succeeded:
        raise StepFailed(failure_message(target.name, job, result))
    return result


def read_log(path: Path) -> str:
    """The text of a log file ("" when there is none yet)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
