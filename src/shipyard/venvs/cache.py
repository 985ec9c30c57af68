"""The environment cache: each environment spec gets its own virtual environment, built once and
reused, for the venv compute target and for local serving alike.

An environment lives at `<workspace>/envs/<hash12>/` (hash of the resolved spec, the Python and
where its packages come from, see spec.py); a serving environment at `envs/serving-<hash12>/`.
Building it:

1. under the workspace's host lock `env-<folder>` (two processes needing the same environment
   build it once: the second waits and then finds it ready);
2. a folder without the marker file is a build that crashed or was killed: removed first, never
   used;
3. `uv venv` + `uv pip install` when `uv` is on PATH, else `python -m venv` + pip (a venv is not
   relocatable, so it is built in place rather than renamed from a staging folder), with the
   spec's package sources in the installer's environment variables (sources.py);
4. installed: the spec's requirements, Shipyard's runtime (`Runtime`: for a pipeline step all of
   Shipyard's dependencies pinned to the versions running here, since the script logs into the
   same MLflow store, whose schema must match; for a scoring server only what the server imports,
   as in a scoring image), except packages the spec names itself, and Shipyard's wheel (built
   from its source tree by shipyard.images.wheels, cached in the workspace);
5. the marker `.shipyard-env.json` is written last.

A ready environment is reused as long as its marker matches: the spec hash and Shipyard's pinned
dependencies (a changed one means a rebuild). A changed Shipyard source tree only reinstalls
Shipyard's wheel (a couple of seconds), so editing Shipyard never costs a full build.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from shipyard import distribution
from shipyard.config.package_sources import installer_environment
from shipyard.crashpoint import pause_at
from shipyard.errors import StepFailed, UsageError
from shipyard.venvs.spec import EnvSpec

if TYPE_CHECKING:
    from shipyard.secrets.redact import Redactor
    from shipyard.workspace import Workspace

MARKER = ".shipyard-env.json"
BUILD_LOG = "build.log"
INSTALLERS = ("uv", "pip")
_TAIL_LINES = 25
HOST_ONLY = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "__PYVENV_LAUNCHER__")
Progress = Callable[[str], None]

# What the installers say when a requirement cannot be had (uv's resolver, then pip's), and when
# an index cannot be reached (both print the URL without its credentials).
_NOT_FOUND = (
    re.compile(r"Because (\S+) was not found in the (?:package registry|provided package locations)"),
    re.compile(r"Because there (?:is|are) no versions? of (\S+?)(?: and|,| you|$)", re.MULTILINE),
    re.compile(r"No matching distribution found for (\S+)"),
)
_UNREACHABLE = (
    re.compile(r"Failed to fetch: `?([^`\s]+)`?"),
    re.compile(r"Could not fetch URL ([^:\s]+(?::[^:\s]+)?):"),
)


@dataclass(frozen=True)
class BuiltEnv:
    """A ready environment; `action` says what this call did: reused, built or refreshed (wheel)."""

    path: Path
    python: Path
    spec: EnvSpec
    action: str
    seconds: float


class EnvBuildFailed(StepFailed):
    """Creating or installing an environment failed; `summary` is one line naming what failed."""

    def __init__(self, summary: str, log: Path, tail: str) -> None:
        self.summary = summary
        self.log = log
        super().__init__(
            f"{summary}; check the spec's package names and pins. Log {log}, last lines:\n{tail}"
        )


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


def serving_requirements(spec: EnvSpec) -> list[str]:
    """What the scoring server imports, pinned to the versions installed here (a scoring image's
    runtime, images/wheels.py); the spec's own entries win over them."""
    from shipyard.images.wheels import serving_runtime

    return sorted(serving_runtime(spec.names()))


@dataclass(frozen=True)
class Runtime:
    """What an environment holds besides its spec: Shipyard's wheel and the packages it needs.
    `prefix` names its folders; with `wheel_deps` False the wheel goes in with --no-deps, its
    imports being `requirements`."""

    name: str
    prefix: str
    requirements: Callable[[EnvSpec], list[str]]
    wheel_deps: bool


PIPELINE = Runtime("pipeline", "", runtime_requirements, True)
SERVING = Runtime("serving", "serving-", serving_requirements, False)


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


def python_in(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def activated(env: Mapping[str, str], python: Path) -> dict[str, str]:
    """`env` as the virtual environment of `python` sees it when activated: its bin/ first on PATH,
    VIRTUAL_ENV set, and none of the host's interpreter settings (PYTHONPATH, PYTHONHOME, ...), so
    only what the environment holds is importable."""
    out = {k: v for k, v in env.items() if k not in HOST_ONLY}
    out["VIRTUAL_ENV"] = str(python.parent.parent)
    out["PATH"] = os.pathsep.join([str(python.parent), env.get("PATH", "")])
    return out


def _tool_environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in HOST_ONLY and k != "VIRTUAL_ENV"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env | extra


def _problem(log_text: str) -> str | None:
    """What the installer could not do, in one line (None: something else failed)."""
    for pattern in _NOT_FOUND:
        match = pattern.search(log_text)
        if match:
            name = match.group(1).rstrip(".,`")
            return f"{name} cannot be installed: no matching version in the package indexes or find_links"
    for pattern in _UNREACHABLE:
        match = pattern.search(log_text)
        if match:
            return f"the package index could not be reached ({match.group(1)})"
    return None


class EnvCache:
    """The workspace's environments (`envs/`), one per spec hash and runtime."""

    def __init__(
        self,
        ws: Workspace,
        *,
        installer: str | None = None,
        base_python: Path | None = None,
        runtime: Runtime = PIPELINE,
    ):
        self.ws = ws
        self.installer = choose_installer(installer)
        self.base_python = Path(base_python or sys.executable)
        self.runtime = runtime
        self.root = ws.subdir("envs")

    def path(self, spec: EnvSpec) -> Path:
        return self.root / f"{self.runtime.prefix}{spec.short_hash}"

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

    def ensure(self, spec: EnvSpec, progress: Progress | None = None) -> BuiltEnv:
        """The environment for `spec`: reused when ready, else (re)built under the host lock.
        `progress` is told each phase of a build (a build takes seconds with uv, minutes with pip)."""
        say = progress or (lambda _message: None)
        started = time.monotonic()
        env_dir = self.path(spec)
        runtime = self.runtime.requirements(spec)
        wheel, wheel_id = self._runtime_wheel()
        with self.ws.host_lock(f"env-{env_dir.name}", timeout=3600):
            marker = self.read_marker(spec)
            ready = (
                marker is not None
                and marker.get("hash") == spec.hash
                and marker.get("runtime_requirements") == runtime
                and python_in(env_dir).exists()
            )
            if marker is not None and ready and marker.get("shipyard_wheel") == wheel_id:
                action = "reused"
            elif marker is not None and ready:
                say(f"environment {env_dir.name}: installing the changed Shipyard…")
                self._install(
                    env_dir, spec, ["--no-deps", "--force-reinstall", str(wheel)], marker["installer"]
                )
                marker["shipyard_wheel"] = wheel_id
                self._write_marker(env_dir, marker)
                action = "refreshed"
            else:
                self._build(spec, env_dir, runtime, wheel, wheel_id, say)
                action = "built"
        return BuiltEnv(env_dir, python_in(env_dir), spec, action, time.monotonic() - started)

    def _build(
        self, spec: EnvSpec, env_dir: Path, runtime: list[str], wheel: Path, wheel_id: str, say: Progress
    ) -> None:
        started = time.monotonic()
        shutil.rmtree(env_dir, ignore_errors=True)  # a half-built env (no marker) from a crash
        env_dir.parent.mkdir(parents=True, exist_ok=True)
        build_log = self.root / f"{env_dir.name}.{BUILD_LOG}"
        build_log.write_text("")
        what = f"environment {env_dir.name}"
        say(f"{what}: creating it ({self.installer})…")
        if self.installer == "uv":
            create = [str(uv_path()), "venv", "--quiet", "--python", str(self.base_python), str(env_dir)]
        else:
            create = [str(self.base_python), "-m", "venv", str(env_dir)]
        self._command(create, build_log, spec, "creating the virtual environment", self.installer)
        requirements = env_dir / "requirements.txt"
        requirements.write_text("".join(f"{line}\n" for line in [*spec.requirements, *runtime]))
        count = f"{len(spec.requirements)} requirements + Shipyard's {len(runtime)}"
        say(f"{what}: installing {count} with {self.installer}…")
        if self.runtime.wheel_deps:
            self._install(env_dir, spec, ["-r", str(requirements), str(wheel)], self.installer, build_log)
        else:
            self._install(env_dir, spec, ["-r", str(requirements)], self.installer, build_log)
            self._install(env_dir, spec, ["--no-deps", str(wheel)], self.installer, build_log)
        pause_at("venv:installed")  # a kill -9 here leaves a folder without the marker: rebuilt, never used
        marker = {
            "hash": spec.hash,
            "python": spec.python,
            "runtime": self.runtime.name,
            "requirements": list(spec.requirements),
            "packages": spec.packages.fingerprint() if spec.packages is not None else None,
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
        spec: EnvSpec,
        args: list[str],
        installer: str,
        build_log: Path | None = None,
    ) -> None:
        python = python_in(env_dir)
        if installer == "uv":
            command = [str(uv_path()), "pip", "install", "--quiet", "--python", str(python), *args]
        else:
            command = [str(python), "-m", "pip", "install", "--quiet", *args]
        log = build_log or (self.root / f"{env_dir.name}.{BUILD_LOG}")
        self._command(command, log, spec, "installing the environment's packages", installer)
        if build_log is None:
            log.unlink(missing_ok=True)

    @staticmethod
    def _write_marker(env_dir: Path, marker: dict[str, Any]) -> None:
        tmp = env_dir / f"{MARKER}.tmp"
        tmp.write_text(json.dumps(marker, indent=2) + "\n")
        tmp.replace(env_dir / MARKER)

    @staticmethod
    def _command(command: list[str], log: Path, spec: EnvSpec, what: str, installer: str) -> None:
        # Index URLs (and their tokens) reach the installer as variables, never on its command line.
        sources, redactor = installer_environment(spec.packages, installer)
        with open(log, "ab") as out:
            out.write(f"$ {' '.join(command)}\n".encode())
            out.flush()
            proc = subprocess.run(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_tool_environment(sources),
            )
        if proc.returncode != 0:
            _mask_log(log, redactor)
            text = log.read_text(errors="replace")
            lines = text.strip().splitlines()[-_TAIL_LINES:]
            source = f" for {spec.source}" if spec.source else ""
            problem = _problem(text) or f"exit code {proc.returncode}"
            raise EnvBuildFailed(f"{what}{source} failed: {problem}", log, "\n".join(lines))


def _mask_log(log: Path, redactor: Redactor | None) -> None:
    """An installer that echoes an index URL must not leave its token in the kept build log."""
    if redactor:
        redactor.redact_file(log)
