"""The builder interface: build a context into a tagged image, inspect it, push it.

podman, docker and buildah take almost the same command lines, so `CliBuilder` holds the shared
logic and each backend module only says how its commands differ. Every build runs with
`--network none` (wheels come from the context) and writes its whole output to a log file; a
failed build raises with the last lines of that log.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from shipyard.errors import ShipyardError

_TAIL_LINES = 30


@dataclass(frozen=True)
class ImageDetails:
    """What `inspect` reports, the same for every builder."""

    id: str
    size_bytes: int
    labels: dict[str, str]
    user: str
    healthcheck: list[str]
    exposed_ports: list[str]
    layers: list[str]
    cmd: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BuildResult:
    details: ImageDetails
    log_path: Path
    cached_steps: int  # build steps the builder took from its cache


class Builder(Protocol):
    name: str
    package: str

    def available(self) -> bool: ...
    def build(self, context: Path, tag: str, *, log_path: Path) -> BuildResult: ...
    def inspect(self, tag: str) -> ImageDetails: ...
    def push(self, tag: str, destination: str, *, username: str | None, password: str | None) -> str: ...
    def remove(self, tag: str) -> None: ...


def log_tail(path: Path, lines: int = _TAIL_LINES) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines)).rstrip("\n")
    except OSError:
        return ""


class CliBuilder:
    """A builder driven through its command line (podman, docker and buildah)."""

    name = ""
    package = ""
    build_command: tuple[str, ...] = ("build",)
    cache_marker = "Using cache"

    def __init__(self) -> None:
        self.executable = shutil.which(self.name)

    def available(self) -> bool:
        return self.executable is not None

    def _exe(self) -> str:
        if self.executable is None:
            raise ShipyardError(f"{self.name} not found: install the Debian package {self.package!r}")
        return self.executable

    def _run(self, args: list[str], *, input_text: str | None = None, what: str) -> str:
        proc = subprocess.run(
            [self._exe(), *args],
            input=input_text,
            capture_output=True,
            text=True,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()[-2000:]
            raise ShipyardError(f"{self.name} {what} failed (exit code {proc.returncode}): {detail}")
        return proc.stdout

    def build_args(self, context: Path, tag: str) -> list[str]:
        return [
            *self.build_command, "--network", "none", "--layers", "--format", "docker",
            "--tag", tag, "--file", str(context / "Dockerfile"), str(context),
        ]  # fmt: skip

    def build(self, context: Path, tag: str, *, log_path: Path) -> BuildResult:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log:
            proc = subprocess.run(
                [self._exe(), *self.build_args(context, tag)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if proc.returncode != 0:
            raise ShipyardError(
                f"{self.name} build of {tag} failed (exit code {proc.returncode}); "
                f"last lines of {log_path}:\n{log_tail(log_path)}"
            )
        text = log_path.read_text(errors="replace")
        return BuildResult(self.inspect(tag), log_path, text.count(self.cache_marker))

    def inspect_raw(self, tag: str) -> dict[str, Any]:
        data = json.loads(self._run(["image", "inspect", tag], what=f"inspect of {tag}"))
        return data[0] if isinstance(data, list) else data

    def inspect(self, tag: str) -> ImageDetails:
        raw = self.inspect_raw(tag)
        config = raw.get("Config") or {}
        health = raw.get("Healthcheck") or config.get("Healthcheck") or {}
        return ImageDetails(
            id=_sha(raw.get("Id", "")),
            size_bytes=int(raw.get("Size") or 0),
            labels=dict(config.get("Labels") or raw.get("Labels") or {}),
            user=config.get("User") or "",
            healthcheck=list(health.get("Test") or []),
            exposed_ports=sorted(config.get("ExposedPorts") or {}),
            layers=list((raw.get("RootFS") or {}).get("Layers") or []),
            cmd=list(config.get("Cmd") or []),
        )

    def login_args(self, registry: str, username: str, authfile: Path) -> list[str]:
        return ["login", "--authfile", str(authfile), "--username", username, "--password-stdin", registry]

    def push_args(self, tag: str, destination: str, authfile: Path | None, digestfile: Path) -> list[str]:
        auth = ["--authfile", str(authfile)] if authfile else []
        return ["push", *auth, "--digestfile", str(digestfile), tag, destination]

    def push(self, tag: str, destination: str, *, username: str | None, password: str | None) -> str:
        """Push `tag` to `destination` (registry/repo:tag); credentials go through stdin only.

        The login is written to a temporary auth file that is deleted after the push, so nothing
        is left in the user's container config. Returns the pushed manifest digest.
        """
        with tempfile.TemporaryDirectory(prefix="shipyard-push-") as tmp:
            authfile = Path(tmp) / "auth.json"
            logged_in = bool(username and password)
            if logged_in:
                registry = destination.split("/", 1)[0]
                self._run(
                    self.login_args(registry, str(username), authfile), input_text=password, what="login"
                )
            digestfile = Path(tmp) / "digest"
            self._run(
                self.push_args(tag, destination, authfile if logged_in else None, digestfile),
                what=f"push of {tag} to {destination}",
            )
            return digestfile.read_text().strip() if digestfile.exists() else ""

    def remove(self, tag: str) -> None:
        subprocess.run([self._exe(), "rmi", "--force", tag], capture_output=True, stdin=subprocess.DEVNULL)


def _sha(value: str) -> str:
    return value if not value or value.startswith("sha256:") else f"sha256:{value}"
