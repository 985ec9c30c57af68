"""The local process target: deploy/local.py's process functions behind the Target interface."""

from __future__ import annotations

from shipyard.deploy.local import log_tail, start_server, stop_server, wait_healthy
from shipyard.deploy.targets.base import DeploymentSpec, TargetHandle
from shipyard.errors import DeploymentError
from shipyard.processes import process_alive


class LocalTarget:
    name = "local"

    def apply(self, spec: DeploymentSpec) -> TargetHandle:
        if spec.bundle_dir is None or spec.log_path is None:
            raise DeploymentError("the local target needs the bundle folder and a log path")
        extra: list[str] = []
        if spec.settings_file is not None:
            extra += ["--settings", str(spec.settings_file)]
        if spec.keys_file is not None:
            extra += ["--keys-file", str(spec.keys_file)]
        proc = start_server(
            spec.bundle_dir,
            host=spec.config.host,
            port=spec.config.port,
            log_path=spec.log_path,
            deployment_id=spec.deployment_id,
            env=spec.env or None,
            extra_args=extra,
        )
        try:
            wait_healthy(proc.url, spec.config.health_timeout_s, spec.deployment_id, pid=proc.pid)
        except DeploymentError:
            stop_server(proc.pid)
            raise
        return TargetHandle("local", proc.url, proc.port, pid=proc.pid, log_path=proc.log_path)

    def status(self, handle: TargetHandle) -> str:
        return "running" if handle.pid and process_alive(handle.pid) else "exited"

    def logs(self, handle: TargetHandle, tail: int = 50) -> str:
        return log_tail(handle.log_path, tail)

    def delete(self, handle: TargetHandle) -> None:
        if handle.pid:
            stop_server(handle.pid)
