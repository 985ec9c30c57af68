"""The container target: a deployment is a container of its image, run with podman or docker.

The container publishes the server's port 8080 on the deployment's host (127.0.0.1 by default)
and a free port chosen by the runtime, gets the CPU and memory limits and the restart policy of
the deployment, and reads the serving settings and the key hashes from read-only mounts. Keys are
mounted as their *folder*: rotation replaces keys.json by a rename, which a single-file bind
mount would never see. Environment variables go through a temporary --env-file, not the command
line. A container that exits (or restarts) before it answers `GET /` is reported with its last
log lines and removed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx

from shipyard.deploy.targets.base import DeploymentSpec, TargetHandle
from shipyard.errors import ConfigError, DeploymentError

RUNTIMES = {"podman": "podman", "docker": "docker.io"}  # command → Debian package
CONTAINER_PORT = 8080
SETTINGS_PATH = "/etc/shipyard/settings.json"
KEYS_DIR = "/etc/shipyard/keys"
_POLL_S = 0.2
_LOG_LINES = 30


def container_name(spec: DeploymentSpec) -> str:
    return f"shipyard-{spec.endpoint}-{spec.slot + '-' if spec.slot else ''}{spec.deployment_id[:12]}"


def write_env_file(folder: Path, env: dict[str, str]) -> Path:
    """`KEY=value` lines in a 0600 file (the runtime's --env-file: values never on a command line)."""
    path = folder / "env"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"{key}={value}\n" for key, value in env.items())
    return path


def pick_runtime(preferred: str | None = None) -> str:
    """podman or docker: `preferred` when it is one of them and installed, else the first installed."""
    names = [preferred] if preferred in RUNTIMES else list(RUNTIMES)
    for name in names:
        if shutil.which(name):
            return name
    packages = " or ".join(repr(RUNTIMES[n]) for n in names)
    raise ConfigError(
        f"the container target needs {' or '.join(names)}: install the Debian package {packages}"
    )


class ContainerTarget:
    name = "container"
    builds_image = True
    runs_in_cluster = False
    on_this_machine = True

    def __init__(self, runtime: str | None = None) -> None:
        self.runtime = pick_runtime(runtime)

    # -- commands ---------------------------------------------------------------------------------
    def _cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.runtime, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120
        )
        if check and proc.returncode != 0:
            raise DeploymentError(f"{self.runtime} {args[0]} failed: {proc.stderr.strip()[-1500:]}")
        return proc

    def bind(self, spec: DeploymentSpec) -> str:
        """The interface the published port listens on."""
        return spec.config.host

    def url_host(self, spec: DeploymentSpec) -> str:
        """The host name in the deployment's URL."""
        return "127.0.0.1" if spec.config.host in ("0.0.0.0", "") else spec.config.host

    def run_args(self, spec: DeploymentSpec, name: str, env_file: Path | None) -> list[str]:
        """The `run` command line (no secrets on it: env comes from a file). The spec's files are
        paths where the runtime runs (this machine here; the remote host for remote-container)."""
        res = spec.config.resources
        memory_mb = int((res.memory_limit_gb or res.memory_gb) * 1024)
        host_port = spec.config.port or ""
        args = [
            "run", "--detach", "--name", name,
            "--label", f"ai.shipyard.deployment={spec.deployment_id}",
            "--label", f"ai.shipyard.endpoint={spec.endpoint}",
            "--publish", f"{self.bind(spec)}:{host_port}:{CONTAINER_PORT}",
            "--cpus", f"{res.cpu_limit or res.cpu_cores:g}",
            "--memory", f"{memory_mb}m",
            "--restart", spec.config.restart,
        ]  # fmt: skip
        server = ["--deployment-id", spec.deployment_id]
        if env_file is not None:
            args += ["--env-file", str(env_file)]
        if spec.settings_file is not None:
            args += ["--volume", f"{spec.settings_file}:{SETTINGS_PATH}:ro"]
            server += ["--settings", SETTINGS_PATH]
        if spec.keys_file is not None:
            keys = spec.keys_file
            args += ["--volume", f"{keys.parent}:{KEYS_DIR}:ro"]
            server += ["--keys-file", f"{KEYS_DIR}/{keys.name}"]
        command = ["python", "-m", "shipyard.serving", "--bundle", "/app/bundle", "--host", "0.0.0.0"]
        return [*args, str(spec.image), *command, "--port", str(CONTAINER_PORT), *server]

    # -- Target -----------------------------------------------------------------------------------
    def apply(self, spec: DeploymentSpec) -> TargetHandle:
        if not spec.image:
            raise DeploymentError(
                "the container target needs an image: build one with `shipyard package --image`"
            )
        name = container_name(spec)
        here = replace(
            spec,
            settings_file=Path(spec.settings_file).resolve() if spec.settings_file else None,
            keys_file=Path(spec.keys_file).resolve() if spec.keys_file else None,
        )
        with tempfile.TemporaryDirectory(prefix="shipyard-env-") as tmp:
            env_file = write_env_file(Path(tmp), spec.env) if spec.env else None
            return self.run_and_wait(here, name, env_file)

    def run_and_wait(self, spec: DeploymentSpec, name: str, env_file: Path | None) -> TargetHandle:
        """Run the container and wait until it answers as `spec`'s deployment; removed if it fails."""
        container_id = self._cli(*self.run_args(spec, name, env_file)).stdout.strip()
        handle = TargetHandle(self.name, "", 0, container_id=container_id, name=name)
        try:
            port = self._published_port(name)
            url = f"http://{self.url_host(spec)}:{port}"
            handle = TargetHandle(self.name, url, port, container_id=container_id, name=name)
            self._wait_healthy(handle, spec.deployment_id, spec.config.health_timeout_s)
        except DeploymentError:
            self.delete(handle)
            raise
        return handle

    def _published_port(self, name: str) -> int:
        out = self._cli("port", name, f"{CONTAINER_PORT}/tcp", check=False).stdout.strip()
        try:
            return int(out.splitlines()[0].rsplit(":", 1)[1])
        except (IndexError, ValueError):
            raise DeploymentError(
                self._with_logs(f"container {name} has no published port ({out or 'none'})", name)
            ) from None

    def _state(self, name: str) -> tuple[str, int, int]:
        """(status, exit code, restart count); status 'missing' if there is no such container."""
        fmt = "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}"
        proc = self._cli("inspect", "--format", fmt, name, check=False)
        if proc.returncode != 0:
            return "missing", -1, 0
        status, code, restarts = (proc.stdout.split() + ["0", "0"])[:3]
        return status, int(code or 0), int(restarts or 0)

    def _with_logs(self, message: str, name: str) -> str:
        tail = self.logs(TargetHandle(self.name, "", 0, name=name), _LOG_LINES)
        return f"{message}\n--- last lines of the container's log ---\n{tail}" if tail else message

    def _wait_healthy(self, handle: TargetHandle, deployment_id: str, timeout_s: float) -> None:
        name = str(handle.name)
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        with httpx.Client(timeout=httpx.Timeout(2.0), trust_env=False) as client:
            while True:
                status, code, restarts = self._state(name)
                if status in ("exited", "dead", "stopped", "missing") or restarts > 0:
                    why = f"exited with code {code}" if status != "missing" else "disappeared"
                    if restarts:
                        why = f"crashed and was restarted {restarts} time(s) (last exit code {code})"
                    raise DeploymentError(
                        self._with_logs(f"container {name} {why} before becoming healthy", name)
                    )
                try:
                    # Naming the deployment gets its id back even with auth on (serving/app.py).
                    named = {"X-Shipyard-Deployment-Id": deployment_id}
                    response = client.get(handle.url + "/", headers=named)
                    body = response.json() if response.status_code == 200 else None
                    if isinstance(body, dict) and body.get("deployment_id") == deployment_id:
                        return
                    last = f"GET / returned {response.status_code}: {response.text[:200]}"
                except (httpx.HTTPError, ValueError) as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if time.monotonic() >= deadline:
                    raise DeploymentError(
                        self._with_logs(
                            f"container {name} did not become healthy within {timeout_s:g} s: {last}", name
                        )
                    )
                time.sleep(_POLL_S)

    def status(self, handle: TargetHandle) -> str:
        ref = handle.name or handle.container_id
        return self._state(ref)[0] if ref else "missing"

    def logs(self, handle: TargetHandle, tail: int = 50) -> str:
        proc = self._cli("logs", "--tail", str(tail), str(handle.name or handle.container_id), check=False)
        return (proc.stdout + proc.stderr).strip()

    def delete(self, handle: TargetHandle) -> None:
        ref = handle.name or handle.container_id
        if not ref:  # it failed before its container existed
            return
        self._cli("stop", "--time", "10", ref, check=False)
        self._cli("rm", "--force", ref, check=False)
