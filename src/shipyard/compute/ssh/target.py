"""The ssh target: a job's script runs on another host, reached with the system OpenSSH client.

Remote layout (`workdir_root`, default `~/.shipyard-jobs`):

    <root>/<job_id>/code/       the project folder (without .shipyard, .git, __pycache__, outputs)
    <root>/<job_id>/inputs/<n>/ each input file or folder
    <root>/<job_id>/outputs/    SHIPYARD_OUTPUTS
    <root>/<job_id>/log, exit   the script's output; its exit code, written when it ends
    <root>/envs/<hash12>/       a venv per environment spec, kept between jobs (marker written last)

`submit` sends code and inputs as one tar stream over ssh, then starts launcher.py, which
reads the job's variables (secrets included) from stdin — never from the remote command line,
which any user of the host can read with `ps` — and detaches the script in its own process group.
`status` reads the exit file or probes the pid; `logs` fetches what the log gained since the last
call; `cancel` signals the process group (TERM, then KILL after `grace_s`).

When a job ends, `wait` copies its outputs folder back into the job's local `outputs_dir` (so
after `run()` the outputs are where the local targets leave them) and removes the remote job
folder (`keep_remote=True` keeps it); `fetch_outputs` copies them to any other folder.

Tracking contract: the remote host cannot reach the workspace's store. With a local store the
script logs beside its outputs instead — `import shipyard` into a workspace at
`<outputs>/.tracking` (SHIPYARD_WORKSPACE), plain `import mlflow` into `file:<outputs>/mlruns`
(MLFLOW_TRACKING_URI) — and the run ids of the local store are dropped; both come back with the
outputs, and the train step imports them into its run (shipyard.tracking.importer). An http(s)
tracking URI is passed on unchanged.
"""

from __future__ import annotations

import io
import json
import shlex
import shutil
import subprocess
import tarfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.compute.base import FINAL_STATES, JobHandle, JobResult, JobTimeout, StepJob, tail
from shipyard.compute.ssh.wheelhouse import ship_wheels
from shipyard.errors import NotFoundError, StepFailed, UsageError
from shipyard.secrets.redact import Redactor
from shipyard.ssh import SshError, SshSession
from shipyard.tracking.importer import FILE_STORE_DIR, TRACKING_DIR
from shipyard.venvs.spec import EnvSpec, read_env_spec

EXCLUDED = frozenset({".shipyard", ".git", "__pycache__", "outputs"})
MARKER = ".shipyard-env.json"
LAUNCHER = Path(__file__).with_name("launcher.py")
_REMOTE_TRACKING = ("http://", "https://", "databricks")
_ENV_BUILD_TIMEOUT_S = 3600


@dataclass
class _Job:
    redactor: Redactor
    started: float
    raw_log: bytes = b""
    cancelled: bool = False
    state: str = "running"
    exit_code: int | None = None
    ended: float | None = None
    finished: bool = False  # outputs fetched, remote folder removed
    env: dict[str, str] = field(default_factory=dict)


def _tar_filter(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if set(Path(info.name).parts) & EXCLUDED else info


class SshTarget:
    """Runs a job's script on `host` over ssh (see the module docstring)."""

    name = "ssh"

    def __init__(
        self,
        host: str,
        port: int = 22,
        user: str | None = None,
        key: str | None = None,
        known_hosts: str | Path | None = None,
        python: str = "python3",
        workdir_root: str = "~/.shipyard-jobs",
        *,
        accept_new: bool = False,
        grace_s: float = 5.0,
        keep_remote: bool = False,
        poll_s: float = 0.5,
        wheel_cache: Path | None = None,
    ):
        self.session = SshSession(host, port, user, key, known_hosts, accept_new)
        self.python = python
        self.workdir_root = workdir_root
        self.grace_s = grace_s
        self.keep_remote = keep_remote
        self.poll_s = poll_s
        self.wheel_cache = wheel_cache  # where the wheels are gathered; None: the host uses an index
        self._facts: tuple[str, str] | None = None  # remote root, python tag
        self._jobs: dict[str, _Job] = {}
        self.last_env_action: str | None = None

    @classmethod
    def from_spec(cls, name: str, spec: Any, ws: Any) -> SshTarget:
        """The host of a compute: entry of type ssh."""
        return cls(
            spec.host,
            spec.port,
            spec.user,
            str(spec.key) if spec.key is not None else None,
            spec.known_hosts,
            spec.python,
            spec.workdir,
            accept_new=spec.accept_new_host_key,
            wheel_cache=ws.subdir("cache", "wheels") if ws is not None else None,
        )

    # -- the host --------------------------------------------------------------------------------
    def probe(self) -> str:
        """`reachable` once the host answers and can run jobs (see host_facts), else its error."""
        self.host_facts()
        return "reachable"

    def host_facts(self) -> tuple[str, str]:
        """(absolute workdir root, Python tag) of the host; clear errors when it cannot run jobs."""
        if self._facts is None:
            py = shlex.quote(self.python)
            root = self.workdir_root
            root_expr = '"$HOME"' + shlex.quote(root[1:]) if root.startswith("~") else shlex.quote(root)
            script = (
                f"command -v {py} >/dev/null 2>&1 || {{ echo 'python-missing' >&2; exit 127; }}; "
                f"{py} -c 'import sys; print(sys.implementation.name + \"-%d.%d\" % sys.version_info[:2])'"
                f" && mkdir -p {root_expr} && cd {root_expr} && pwd"
            )
            done = self.session.run(script, what="checking the host", check=False)
            err = done.stderr.decode("utf-8", "replace")
            if done.returncode == 127 and "python-missing" in err:
                raise StepFailed(
                    f"{self.python} is not installed on {self.session.where}: install Python 3 there "
                    f"(Debian: apt-get install python3 python3-venv) or set python= to its path"
                )
            self.session.raise_for(done.returncode, done.stderr, "checking the host")
            tag, root_path = done.stdout.decode().split()[-2:]
            self._facts = (root_path, tag)
        return self._facts

    def ensure_env(self, spec_path: Path | None) -> str:
        """The remote venv's Python for the spec (built once per spec hash, then reused). With a
        wheel cache, the venv also gets the running Shipyard's wheel, everything installed offline
        from wheels shipped from here (ssh/wheelhouse.py); without one, pip reaches an index."""
        root, tag = self.host_facts()
        spec = read_env_spec(spec_path, python=tag) if spec_path is not None else EnvSpec((), tag)
        wheels = ship_wheels(self.session, self.wheel_cache, root, spec) if self.wheel_cache else None
        env = f"{root}/envs/{spec.short_hash}"
        q = shlex.quote
        marker_file, req_file = q(f"{env}/{MARKER}"), q(f"{env}/requirements.txt")
        pip = f"PIP_DISABLE_PIP_VERSION_CHECK=1 {q(env + '/bin/python')} -m pip install --quiet"
        fail = "{ tail -n 25 $log >&2; exit 4; }"
        if wheels is None:
            requirements = spec.requirements
            install = f"if [ -s {req_file} ]; then {pip} -r {req_file} >>$log 2>&1 || {fail}; fi; "
            current = f"[ -f {marker_file} ]"
        else:
            requirements = wheels.requirements
            offline = f"{pip} --no-index --find-links {q(wheels.folder)}"
            install = (
                f"{offline} -r {req_file} >>$log 2>&1 || {fail}; "
                f"{offline} --no-deps --force-reinstall {q(wheels.shipyard)} >>$log 2>&1 || {fail}; "
            )
            same_wheels = json.dumps({"wheels": wheels.identity})[1:-1]  # as the marker spells it
            current = f"grep -qF {q(same_wheels)} {marker_file} 2>/dev/null"
        marker = json.dumps(
            {"hash": spec.hash, "python": tag, "requirements": list(spec.requirements)}
            | ({"wheels": wheels.identity} if wheels else {})
        )
        script = (
            f"set -e; mkdir -p {q(root + '/envs')}; exec 9>{q(env + '.lock')}; "
            "if command -v flock >/dev/null 2>&1; then flock 9; fi; "
            f"if {current}; then echo reused; exit 0; fi; log={q(env + '.build.log')}; action=refreshed; "
            f"if [ ! -f {marker_file} ]; then action=built; rm -rf {q(env)}; "
            f"{q(self.python)} -m venv {q(env)} >$log 2>&1 || {{ tail -n 25 $log >&2; exit 3; }}; fi; "
            f"cat > {req_file}; {install}"
            f"printf '%s\\n' {q(marker)} > {q(env + '/' + MARKER + '.tmp')}; "
            f"mv {q(env + '/' + MARKER + '.tmp')} {q(env + '/' + MARKER)}; rm -f $log; echo $action"
        )
        done = self.session.run(
            script,
            stdin="".join(f"{line}\n" for line in requirements).encode(),
            what=f"building the environment for {spec_path or 'Shipyard'} (python -m venv + pip)",
            timeout_s=_ENV_BUILD_TIMEOUT_S,
        )
        self.last_env_action = done.stdout.decode().strip().splitlines()[-1]
        return f"{env}/bin/python"

    # -- submit ----------------------------------------------------------------------------------
    def _bundle(self, job: StepJob) -> tuple[bytes, dict[str, str]]:
        """A gzip tar of launcher, code and inputs; the inputs' paths relative to the job folder."""
        buffer = io.BytesIO()
        inputs: dict[str, str] = {}
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(LAUNCHER, arcname="launcher.py")
            tar.add(job.project_dir, arcname="code", filter=_tar_filter)
            for name, path in job.inputs.items():
                path = Path(path)
                if not path.exists():
                    raise StepFailed(f"{job.name}: input {name} ({path}) does not exist")
                inputs[name] = f"inputs/{name}/{path.name}"
                tar.add(path, arcname=inputs[name])
        return buffer.getvalue(), inputs

    def _environment(self, job: StepJob, job_dir: str, python: str) -> dict[str, str]:
        env = dict(job.env)
        outputs = f"{job_dir}/outputs"
        uri = env.get("MLFLOW_TRACKING_URI", "")
        if not uri.startswith(_REMOTE_TRACKING):
            # The workspace store is on this machine: the script logs beside its outputs
            # (shipyard.tracking.importer brings the run back into the workspace).
            store = f"{outputs}/{TRACKING_DIR}"
            env.update(
                SHIPYARD_WORKSPACE=store,
                SHIPYARD_DATABASE_URI=f"sqlite:///{store}/mlflow.db",
                SHIPYARD_ARTIFACT_URI=f"file://{store}/artifacts",
                MLFLOW_TRACKING_URI=f"file:{outputs}/{FILE_STORE_DIR}",
            )
            env.pop("MLFLOW_REGISTRY_URI", None)
            env.pop("MLFLOW_RUN_ID", None)
            env.pop("MLFLOW_EXPERIMENT_ID", None)  # the workspace's, unknown to the stores there
            env.pop("SHIPYARD_RUN_ID", None)
        if python != self.python:  # a remote venv
            venv = python.rsplit("/bin/", 1)[0]
            env["VIRTUAL_ENV"] = venv  # the launcher puts its bin/ first on the host's PATH
        env["SHIPYARD_OUTPUTS"] = outputs
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def submit(self, job: StepJob) -> JobHandle:
        if not job.script_path.is_file():
            raise StepFailed(f"{job.name}: script {job.script_path} does not exist")
        root, _ = self.host_facts()
        python = self.python
        if job.environment is not None:
            spec = Path(job.environment)
            python = self.ensure_env(spec if spec.is_absolute() else job.project_dir / spec)
        elif self.wheel_cache is not None:
            python = self.ensure_env(None)  # Shipyard and its dependencies, nothing else
        job_id = uuid.uuid4().hex[:12]
        job_dir = f"{root}/{job_id}"
        bundle, inputs = self._bundle(job)
        q = shlex.quote
        self.session.run(
            f"mkdir -p {q(job_dir + '/outputs')} && tar xzf - -C {q(job_dir)}",
            stdin=bundle,
            what=f"copying {job.name}'s code and inputs",
        )
        env = self._environment(job, job_dir, python)
        env["SHIPYARD_INPUTS"] = json.dumps({k: f"{job_dir}/{v}" for k, v in inputs.items()})
        payload = json.dumps({"env": {**env, **job.secret_env}}).encode()
        launch = f"cd {q(job_dir)} && {q(self.python)} launcher.py {q(job_dir)} {q(python)} " + " ".join(
            q(part) for part in (job.script, *job.args)
        )
        done = self.session.run(launch, stdin=payload, what=f"starting {job.script}")
        pid = int(done.stdout.decode().split()[-1])
        self._jobs[job_id] = _Job(Redactor(dict(job.secret_env)), time.monotonic(), env=env)
        job.outputs_dir.mkdir(parents=True, exist_ok=True)
        return JobHandle(
            target=self.name,
            job_id=job_id,
            name=job.name,
            pid=pid,
            data={
                "host": self.session.where,
                "job_dir": job_dir,
                "outputs_dir": str(job.outputs_dir),
                "python": python,
                "launch": launch,
            },
        )

    # -- following a job ---------------------------------------------------------------------------
    def _job(self, handle: JobHandle) -> _Job:
        known = self._jobs.get(handle.job_id)
        if known is None:
            raise NotFoundError(
                f"job {handle.job_id} ({handle.name}) was not started by this ssh target object"
            )
        return known

    def status(self, handle: JobHandle) -> str:
        job = self._job(handle)
        if job.state in FINAL_STATES:
            return job.state
        d = shlex.quote(handle.data["job_dir"])
        script = (
            f"if [ -f {d}/exit ]; then cat {d}/exit; elif kill -0 {handle.pid} 2>/dev/null; then "
            f"echo running; elif [ -f {d}/exit ]; then cat {d}/exit; else echo gone; fi"
        )
        answer = self.session.run(script, what=f"checking {handle.name}").stdout.decode().strip()
        if answer == "running":
            return "running"
        job.ended = job.ended or time.monotonic()
        if answer == "gone":
            job.state = "cancelled" if job.cancelled else "failed"
        else:
            job.exit_code = int(answer)
            job.state = "cancelled" if job.cancelled else ("succeeded" if job.exit_code == 0 else "failed")
        return job.state

    def logs(self, handle: JobHandle) -> str:
        """The log so far, secrets masked; while the job runs, only whole lines (a value being
        printed is never cut in two, which would let its first half past the redactor)."""
        job = self._job(handle)
        if not job.finished:
            log = shlex.quote(handle.data["job_dir"] + "/log")
            done = self.session.run(
                f"tail -c +{len(job.raw_log) + 1} {log} 2>/dev/null || true",
                what=f"reading {handle.name}'s log",
            )
            job.raw_log += done.stdout
        raw = job.raw_log
        if job.state not in FINAL_STATES and not raw.endswith(b"\n"):
            raw = raw[: raw.rfind(b"\n") + 1]
        return job.redactor.redact(raw.decode("utf-8", "replace"))

    def wait(self, handle: JobHandle, timeout_s: float | None = None) -> JobResult:
        job = self._job(handle)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.status(handle) not in FINAL_STATES:
            if deadline is not None and time.monotonic() > deadline:
                raise JobTimeout(
                    f"{handle.name} is still running on {self.session.where} after {timeout_s:g}s"
                )
            time.sleep(self.poll_s)
        self._finish(handle, job)
        duration = (job.ended or time.monotonic()) - job.started
        return JobResult(job.state, job.exit_code, tail(self.logs(handle)), duration)

    def _finish(self, handle: JobHandle, job: _Job) -> None:
        """Once: the whole log, the outputs into the local outputs folder, the remote folder removed."""
        if job.finished:
            return
        self.logs(handle)
        self._pull_outputs(handle, Path(handle.data["outputs_dir"]))
        if not self.keep_remote:
            self.session.run(f"rm -rf {shlex.quote(handle.data['job_dir'])}", what="removing the job folder")
        job.finished = True

    def cancel(self, handle: JobHandle) -> None:
        job = self._job(handle)
        if self.status(handle) in FINAL_STATES:
            return
        job.cancelled = True
        pg = int(handle.pid or 0)
        if pg <= 1:
            raise UsageError(f"job {handle.job_id} has no remote process group to stop")
        rounds = max(1, int(self.grace_s / 0.2))
        self.session.run(
            f"kill -TERM -{pg} 2>/dev/null || exit 0; i=0; "
            f"while kill -0 -{pg} 2>/dev/null && [ $i -lt {rounds} ]; do sleep 0.2; i=$((i+1)); done; "
            f"kill -KILL -{pg} 2>/dev/null; true",
            what=f"stopping {handle.name}",
            timeout_s=self.grace_s + 60,
        )
        self.status(handle)
        self._finish(handle, job)

    # -- outputs -----------------------------------------------------------------------------------
    def _pull_outputs(self, handle: JobHandle, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        outputs = shlex.quote(handle.data["job_dir"] + "/outputs")
        with self.session.identity() as key_file:
            proc = self.session.popen(
                f"tar czf - -C {outputs} .", key_file, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            data, err = proc.communicate(timeout=_ENV_BUILD_TIMEOUT_S)
        self.session.raise_for(proc.returncode, err, f"copying {handle.name}'s outputs back")
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(dest, filter="data")

    def fetch_outputs(self, handle: JobHandle, dest: Path) -> Path:
        """Copy the outputs into `dest`: from the host while the remote folder exists, else from
        the local copy `wait` made."""
        job = self._job(handle)
        dest = Path(dest)
        if not job.finished:
            self._pull_outputs(handle, dest)
            return dest
        source = Path(handle.data["outputs_dir"])
        if source.resolve() != dest.resolve():
            shutil.copytree(source, dest, dirs_exist_ok=True)
        return dest


__all__ = ["SshError", "SshTarget"]
