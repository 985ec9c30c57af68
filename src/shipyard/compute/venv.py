"""The venv target: each environment spec gets its own virtual environment, built once and reused.

An environment lives at `<workspace>/envs/<hash12>/` (hash of the resolved spec and the Python,
see envspec.py). Building it:

1. under the workspace lock `env-<hash12>` (two runs needing the same environment build it once:
   the second waits and then finds it ready);
2. a folder without the marker file is a build that crashed or was interrupted: removed first;
3. `uv venv` + `uv pip install` when `uv` is on PATH, else `python -m venv` + pip (a venv is not
   relocatable, so it is built in place rather than renamed from a staging folder);
4. installed in one resolve: the spec's requirements, Shipyard's own dependencies pinned to the
   versions running here (the script logs through Shipyard's tracking facade into the same MLflow
   store, whose schema must match), except packages the spec names itself, and Shipyard's wheel
   (built from its source tree by shipyard.images.wheels, cached in the workspace);
5. the marker `.shipyard-env.json` is written last.

A ready environment is reused as long as its marker matches: the spec hash and Shipyard's pinned
dependencies (a changed one means a rebuild). A changed Shipyard source tree only reinstalls
Shipyard's wheel (a couple of seconds), so editing Shipyard never costs a full build.

The script then runs as on the local target, with the environment's Python and without the
host's PYTHONPATH/PYTHONHOME, so only what the spec (and Shipyard) brings is importable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from shipyard import distribution
from shipyard.compute.base import StepJob
from shipyard.compute.envspec import EnvSpec, read_env_spec
from shipyard.compute.local import LocalTarget
from shipyard.errors import StepFailed, UsageError

if TYPE_CHECKING:
    from shipyard.workspace import Workspace

MARKER = ".shipyard-env.json"
BUILD_LOG = "build.log"
INSTALLERS = ("uv", "pip")
_TAIL_LINES = 25
_HOST_ONLY = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "__PYVENV_LAUNCHER__")


@dataclass(frozen=True)
class BuiltEnv:
    """A ready environment; `action` says what this call did: reused, built or refreshed (wheel)."""

    path: Path
    python: Path
    spec: EnvSpec
    action: str
    seconds: float


def runtime_requirements(spec: EnvSpec) -> list[str]:
    """Shipyard's dependencies (no extras) pinned to the versions installed here; the spec's own
    entries win over them."""
    requires = distribution.requires()
    named = spec.names()
    lines = []
    for text in requires:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if canonicalize_name(req.name) in named:
            continue
        try:
            lines.append(f"{canonicalize_name(req.name)}=={metadata.version(req.name)}")
        except metadata.PackageNotFoundError:
            lines.append(str(req))
    return sorted(lines)


def uv_path() -> str | None:
    """uv on PATH, or installed beside this Python (`pip install uv` into Shipyard's own venv)."""
    beside = Path(sys.executable).parent / "uv"
    return shutil.which("uv") or (str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None)


def choose_installer(requested: str | None = None) -> str:
    """`uv` when it is installed (or asked for), else `pip`."""
    if requested is None:
        return "uv" if uv_path() else "pip"
    if requested not in INSTALLERS:
        raise UsageError(f"installer {requested!r}: expected one of {', '.join(INSTALLERS)}")
    if requested == "uv" and not uv_path():
        raise UsageError(
            "installer 'uv' asked for but uv is not on PATH: install it (pip install uv) or use pip"
        )
    return requested


def _python_in(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def _tool_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _HOST_ONLY and k != "VIRTUAL_ENV"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


class EnvCache:
    """The workspace's environments (`envs/`), one per spec hash."""

    def __init__(self, ws: Workspace, *, installer: str | None = None, base_python: Path | None = None):
        self.ws = ws
        self.installer = choose_installer(installer)
        self.base_python = Path(base_python or sys.executable)
        self.root = ws.subdir("envs")

    def path(self, spec: EnvSpec) -> Path:
        return self.root / spec.short_hash

    def _runtime_wheel(self) -> tuple[Path, str]:
        """Shipyard's wheel file and its identity (source tree hash + wheel hash)."""
        from shipyard.images.wheels import runtime_wheel

        wheels, name = runtime_wheel(self.ws.subdir("cache", "wheels"))
        return wheels.path / name, wheels.lock

    def read_marker(self, spec: EnvSpec) -> dict[str, Any] | None:
        try:
            data = json.loads((self.path(spec) / MARKER).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def ensure(self, spec: EnvSpec) -> BuiltEnv:
        """The environment for `spec`: reused when ready, else (re)built under the workspace lock."""
        started = time.monotonic()
        env_dir = self.path(spec)
        runtime = runtime_requirements(spec)
        wheel, wheel_id = self._runtime_wheel()
        with self.ws.host_lock(f"env-{spec.short_hash}", timeout=3600):
            marker = self.read_marker(spec)
            ready = (
                marker is not None
                and marker.get("hash") == spec.hash
                and marker.get("runtime_requirements") == runtime
                and _python_in(env_dir).exists()
            )
            if marker is not None and ready and marker.get("shipyard_wheel") == wheel_id:
                action = "reused"
            elif marker is not None and ready:
                self._install(env_dir, ["--no-deps", "--force-reinstall", str(wheel)], marker["installer"])
                marker["shipyard_wheel"] = wheel_id
                self._write_marker(env_dir, marker)
                action = "refreshed"
            else:
                self._build(spec, env_dir, runtime, wheel, wheel_id)
                action = "built"
        return BuiltEnv(env_dir, _python_in(env_dir), spec, action, time.monotonic() - started)

    def _build(self, spec: EnvSpec, env_dir: Path, runtime: list[str], wheel: Path, wheel_id: str) -> None:
        started = time.monotonic()
        shutil.rmtree(env_dir, ignore_errors=True)  # a half-built env (no marker) from a crash
        env_dir.parent.mkdir(parents=True, exist_ok=True)
        build_log = self.root / f"{spec.short_hash}.{BUILD_LOG}"
        build_log.write_text("")
        if self.installer == "uv":
            create = [str(uv_path()), "venv", "--quiet", "--python", str(self.base_python), str(env_dir)]
        else:
            create = [str(self.base_python), "-m", "venv", str(env_dir)]
        self._command(create, build_log, spec, "creating the virtual environment")
        requirements = env_dir / "requirements.txt"
        requirements.write_text("".join(f"{line}\n" for line in [*spec.requirements, *runtime]))
        self._install(env_dir, ["-r", str(requirements), str(wheel)], self.installer, build_log, spec)
        marker = {
            "hash": spec.hash,
            "python": spec.python,
            "requirements": list(spec.requirements),
            "source": str(spec.source) if spec.source else None,
            "runtime_requirements": runtime,
            "shipyard_wheel": wheel_id,
            "installer": self.installer,
            "build_seconds": round(time.monotonic() - started, 2),
            "built_at": time.time(),
        }
        self._write_marker(env_dir, marker)
        build_log.unlink(missing_ok=True)

    def _install(
        self,
        env_dir: Path,
        args: list[str],
        installer: str,
        build_log: Path | None = None,
        spec: EnvSpec | None = None,
    ) -> None:
        python = _python_in(env_dir)
        if installer == "uv":
            command = [str(uv_path()), "pip", "install", "--quiet", "--python", str(python), *args]
        else:
            command = [str(python), "-m", "pip", "install", "--quiet", *args]
        log = build_log or (self.root / f"{env_dir.name}.{BUILD_LOG}")
        self._command(command, log, spec, "installing the environment's packages")
        if build_log is None:
            log.unlink(missing_ok=True)

    @staticmethod
    def _write_marker(env_dir: Path, marker: dict[str, Any]) -> None:
        tmp = env_dir / f"{MARKER}.tmp"
        tmp.write_text(json.dumps(marker, indent=2) + "\n")
        tmp.replace(env_dir / MARKER)

    @staticmethod
    def _command(command: list[str], log: Path, spec: EnvSpec | None, what: str) -> None:
        with open(log, "ab") as out:
            out.write(f"$ {' '.join(command)}\n".encode())
            out.flush()
            proc = subprocess.run(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_tool_environment(),
            )
        if proc.returncode != 0:
            lines = log.read_text(errors="replace").strip().splitlines()[-_TAIL_LINES:]
            source = f" for {spec.source}" if spec is not None and spec.source else ""
            raise StepFailed(
                f"{what}{source} failed (exit code {proc.returncode}); check the spec's package names and "
                f"pins. Log {log}, last lines:\n" + "\n".join(lines)
            )


class VenvTarget(LocalTarget):
    """Runs a job's script with the Python of the environment built from `job.environment`."""

    name = "venv"

    def __init__(
        self,
        ws: Workspace,
        *,
        installer: str | None = None,
        base_python: Path | None = None,
        grace_s: float = 5.0,
    ):
        super().__init__(grace_s=grace_s)
        self.envs = EnvCache(ws, installer=installer, base_python=base_python)
        self.last_env: BuiltEnv | None = None

    @classmethod
    def from_spec(cls, name: str, spec: Any, ws: Any) -> VenvTarget:
        """The built-in venv target: environments cached in the workspace `ws`."""
        return cls(ws)

    def spec(self, job: StepJob) -> EnvSpec:
        path = job.environment
        if path is not None and not Path(path).is_absolute():
            path = job.project_dir / path
        return read_env_spec(path)

    def prepare(self, job: StepJob) -> BuiltEnv:
        """Build or reuse the job's environment (also called by submit)."""
        self.last_env = self.envs.ensure(self.spec(job))
        return self.last_env

    def interpreter(self, job: StepJob) -> Path:
        return self.prepare(job).python

    def base_environment(self, job: StepJob, python: Path) -> dict[str, str]:
        env_dir = python.parent.parent
        env = {k: v for k, v in os.environ.items() if k not in _HOST_ONLY}
        env["VIRTUAL_ENV"] = str(env_dir)
        env["PATH"] = os.pathsep.join([str(python.parent), os.environ.get("PATH", "")])
        return env
