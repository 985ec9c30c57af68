"""The local process target: deploy/local.py's process functions behind the Target interface.

The server runs with the Python `runtime.launch` chose for the bundle (`runs_bundle_environment`):
Shipyard's own, or the bundle's own environment (shipyard/venvs/serving.py)."""

from __future__ import annotations

from shipyard.deploy.local import find_servers, log_tail, start_server, stop_server, wait_healthy
from shipyard.deploy.targets.base import DeploymentSpec, TargetHandle
from shipyard.errors import DeploymentError
from shipyard.ownership import same_process
from shipyard.processes import process_alive


class LocalTarget:
    name = "local"
    builds_image = False
    runs_in_cluster = False
    on_this_machine = True
    # The server runs with a Python on this machine that must hold the bundle's requirements.
    runs_bundle_environment = True

    def apply(self, spec: DeploymentSpec) -> TargetHandle:
        if spec.bundle_dir is None or spec.log_path is None:
            raise DeploymentError("the local target needs the bundle folder and a log path")
        extra: list[str] = []
        if spec.settings_file is not None:
            extra += ["--settings", str(spec.settings_file)]
        if spec.keys_file is not None:
            extra += ["--keys-file", str(spec.keys_file)]
        if spec.capture_dir is not None:
            extra += ["--capture-dir", str(spec.capture_dir)]
        proc = start_server(
            spec.bundle_dir,
            host=spec.config.host,
            port=spec.config.port,
            log_path=spec.log_path,
            deployment_id=spec.deployment_id,
            env=spec.env or None,
            extra_args=extra,
            python=spec.python,
            on_spawn=spec.on_spawn,
        )
        try:
            wait_healthy(proc.url, spec.config.health_timeout_s, spec.deployment_id, pid=proc.pid)
        except DeploymentError:
            stop_server(proc.pid)
            raise
        return TargetHandle("local", proc.url, proc.port, pid=proc.pid, log_path=proc.log_path)

    def status(self, handle: TargetHandle) -> str:
        # A recorded pid that a new process reuses is not the server (ownership.py).
        running = handle.pid and process_alive(handle.pid) and same_process(handle)
        return "running" if running else "exited"

    def logs(self, handle: TargetHandle, tail: int = 50) -> str:
        return log_tail(handle.log_path, tail)

    def delete(self, handle: TargetHandle) -> None:
        """Stop the server; one whose pid was never recorded (its starter died right after
        starting it) is found by the deployment id on its command line, never by a guess."""
        if handle.pid:
            stop_server(handle.pid)
        elif handle.deployment_id:
            for pid in find_servers(handle.deployment_id):
                stop_server(pid)
