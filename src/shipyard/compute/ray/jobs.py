"""The ray target: a step's script runs as a Ray job (the Jobs API of the cluster's dashboard).

`submit` sends the project folder as the job's `working_dir` (without .shipyard, .git, outputs),
the step's variables as `env_vars`, and the environment spec's requirements (plus the compute's
`pip` list) as the runtime_env's `pip`, and reserves `entrypoint_num_cpus` for the driver, so a
cluster with N CPUs runs N steps (sweep trials) at once and queues the rest. Logs come from the
Jobs API; `cancel` stops the job (Ray signals the driver's process group).

What a step can reach: on a cluster Shipyard started on this machine the job runs here, so the
workspace's tracking store, the inputs and the outputs folder are the local paths, as with the
local target. A cluster elsewhere (compute.NAME.address) gets inputs that lie inside the project
with the working_dir (paths rewritten relative to it), but cannot reach a SQLite workspace: that
needs an http(s) tracking server, and outputs need storage both sides see — we refuse a local
tracking store there rather than lose the run.

Secrets: Ray keeps a job's runtime_env, env_vars included, in its job table, where anyone who
can reach the dashboard reads it. Steps with secrets are refused unless the compute sets
`secrets_in_runtime_env: true` (an explicit, documented choice); the values are still masked in
every log Shipyard writes.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from shipyard.compute.base import FINAL_STATES, JobHandle, JobResult, JobTimeout, StepJob, tail
from shipyard.compute.ray import distributed, jobs_api
from shipyard.errors import ConfigError, StepFailed
from shipyard.secrets.redact import Redactor

EXCLUDES = [".shipyard", ".git", "__pycache__", "outputs", "mlruns", ".venv"]
_STATES = {
    "PENDING": "queued",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "STOPPED": "cancelled",
}
_REMOTE_TRACKING = ("http://", "https://", "databricks")
_POLL_S = 0.5


class RayTarget:
    """Runs jobs on the Ray cluster whose dashboard is at `address`."""

    name = "ray"
    distributes = True  # runs train.distributed jobs (compute/ray/distributed.py)

    def __init__(
        self,
        address: str,
        *,
        local: bool = False,
        python: str = "python",
        entrypoint_num_cpus: float = 1,
        pip: tuple[str, ...] = (),
        allow_secrets: bool = False,
        on_use: Any = None,
    ):
        self.address = address
        self.local = local  # the cluster runs on this machine (it sees our paths)
        self.python = python
        self.entrypoint_num_cpus = entrypoint_num_cpus
        self.pip = tuple(pip)
        self.allow_secrets = allow_secrets
        self.on_use = on_use  # called when a job starts or ends (the idle clock)
        self._client_obj: Any = None
        self._redactors: dict[str, Redactor] = {}
        self._outputs: dict[str, Path] = {}

    @classmethod
    def from_spec(cls, name: str, spec: Any, ws: Any) -> RayTarget:
        """A cluster by its dashboard address, or the local cluster `name` Shipyard runs."""
        common = {
            "entrypoint_num_cpus": spec.entrypoint_num_cpus,
            "pip": tuple(spec.pip),
            "allow_secrets": spec.secrets_in_runtime_env,
        }
        if spec.address:
            # A cluster on this machine (loopback) sees our paths and runs our interpreter.
            here = (urlparse(spec.address).hostname or "") in ("127.0.0.1", "localhost", "::1")
            return cls(spec.address, local=here, python=sys.executable if here else "python", **common)
        from shipyard.compute import clusters

        return cls(
            clusters.dashboard_url(ws, name),
            local=True,
            python=sys.executable,  # the cluster was started from this environment
            on_use=lambda: clusters.touch(ws, name),
            **common,
        )

    def probe(self) -> str:
        """`running` when the cluster's dashboard answers, else ConfigError."""
        if not jobs_api.dashboard_up(self.address):
            raise ConfigError(f"the Ray cluster's dashboard at {self.address} does not answer")
        return "running"

    @property
    def client(self) -> Any:
        if self._client_obj is None:
            self._client_obj = jobs_api.client(self.address)
        return self._client_obj

    # -- submit ----------------------------------------------------------------------------------
    def _env(self, job: StepJob) -> dict[str, str]:
        env = dict(job.env)
        if not self.local:
            uri = env.get("MLFLOW_TRACKING_URI", "")
            if uri and not uri.startswith(_REMOTE_TRACKING):
                raise ConfigError(
                    f"the Ray cluster at {self.address} cannot reach this workspace's tracking store "
                    f"({uri}): use an http(s) MLflow tracking server as workspace.database_uri, or a "
                    "cluster on this machine (`shipyard compute create NAME --type ray`)"
                )
        inputs = {}
        for name, path in job.inputs.items():
            path = Path(path).resolve()
            inside = path.is_relative_to(job.project_dir.resolve())
            inputs[name] = (
                str(path.relative_to(job.project_dir.resolve())) if inside and not self.local else str(path)
            )
        env["SHIPYARD_INPUTS"] = json.dumps(inputs)
        env["SHIPYARD_OUTPUTS"] = str(job.outputs_dir)
        env["PYTHONUNBUFFERED"] = "1"
        return {**env, **job.secret_env}

    def _runtime_env(self, job: StepJob, env: dict[str, str]) -> dict[str, Any]:
        runtime_env: dict[str, Any] = {
            "working_dir": str(job.project_dir),
            "excludes": EXCLUDES,
            "env_vars": env,
        }
        pip = list(self.pip)
        if job.environment is not None:
            from shipyard.venvs.spec import read_env_spec

            spec_path = Path(job.environment)
            pip += read_env_spec(
                spec_path if spec_path.is_absolute() else job.project_dir / spec_path
            ).requirements
        if pip:
            runtime_env["pip"] = pip
        return runtime_env

    def submit(self, job: StepJob) -> JobHandle:
        if not job.script_path.is_file():
            raise StepFailed(f"{job.name}: script {job.script_path} does not exist")
        with_credentials = sorted(k for k, v in job.env.items() if "://" in v and urlparse(v).password)
        if with_credentials and not self.allow_secrets:
            raise ConfigError(
                f"{job.name}: {', '.join(with_credentials)} hold a password, which Ray would keep in its job "
                f"table on {self.address}: use a URI without credentials (a .pgpass file, an IAM role, a "
                "token from the environment), or set secrets_in_runtime_env: true on this compute"
            )
        if job.secret_env and not self.allow_secrets:
            raise ConfigError(
                f"{job.name} uses secrets ({', '.join(sorted(job.secret_env))}), and Ray would keep their "
                f"values in its job table on {self.address}: set secrets_in_runtime_env: true on this "
                "compute if everyone who can reach its dashboard may read them, or run the step elsewhere"
            )
        job.outputs_dir.mkdir(parents=True, exist_ok=True)
        submission_id = f"shipyard-{job.name}-{uuid.uuid4().hex[:10]}"
        runtime_env = self._runtime_env(job, self._env(job))
        # With pip packages Ray activates a virtualenv for the entrypoint: `python` is its Python
        # (an absolute path to ours would skip it and the packages with it).
        python = "python" if "pip" in runtime_env else self.python
        command, driver_cpus = [job.script, *job.args], self.entrypoint_num_cpus
        if (d := job.distribution) is not None:
            # The driver only starts the TorchTrainer and waits: its workers get the CPUs.
            command, driver_cpus = distributed.command(d.workers, d.backend, d.gpu, job.script, job.args), 0
        entrypoint = " ".join(shlex.quote(p) for p in (python, *command))
        try:
            self.client.submit_job(
                entrypoint=entrypoint,
                submission_id=submission_id,
                runtime_env=runtime_env,
                entrypoint_num_cpus=driver_cpus,
                metadata={"shipyard.step": job.name},
            )
        except ConfigError:
            raise
        except Exception as exc:
            raise StepFailed(f"the Ray cluster at {self.address} refused {job.name}: {exc}") from None
        self._redactors[submission_id] = Redactor(dict(job.secret_env))
        self._outputs[submission_id] = job.outputs_dir
        self._used()
        return JobHandle(self.name, submission_id, job.name, data={"address": self.address})

    def _used(self) -> None:
        if self.on_use is not None:
            self.on_use()

    # -- follow ----------------------------------------------------------------------------------
    def status(self, handle: JobHandle) -> str:
        raw = str(self.client.get_job_status(handle.job_id)).split(".")[-1]
        return _STATES.get(raw, "running")

    def logs(self, handle: JobHandle) -> str:
        text = self.client.get_job_logs(handle.job_id)
        return self._redactors.get(handle.job_id, Redactor({})).redact(text)

    def wait(self, handle: JobHandle, timeout_s: float | None = None) -> JobResult:
        started = time.monotonic()
        while (state := self.status(handle)) not in FINAL_STATES:
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                raise JobTimeout(f"{handle.name} is still running on the Ray cluster after {timeout_s:g}s")
            time.sleep(_POLL_S)
        info = self.client.get_job_info(handle.job_id)
        self._used()
        exit_code = getattr(info, "driver_exit_code", None)
        log = self.logs(handle)
        if state == "failed" and exit_code is None and info.message:
            log = f"{log}\n{info.message}"  # Ray's reason (runtime_env setup failed, ...)
        duration = ((info.end_time or 0) - (info.start_time or 0)) / 1000 if info.start_time else 0.0
        return JobResult(state, exit_code, tail(log), max(duration, 0.0))

    def cancel(self, handle: JobHandle) -> None:
        try:
            if self.status(handle) in FINAL_STATES:
                return
            self.client.stop_job(handle.job_id)
        except Exception:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.status(handle) not in FINAL_STATES:
            time.sleep(_POLL_S)

    def fetch_outputs(self, handle: JobHandle, dest: Path) -> Path:
        source = self._outputs.get(handle.job_id)
        dest = Path(dest)
        if source is None or not source.is_dir():
            raise StepFailed(f"{handle.name}: no outputs folder to fetch on this machine")
        if source.resolve() != dest.resolve():
            shutil.copytree(source, dest, dirs_exist_ok=True)
        return dest
