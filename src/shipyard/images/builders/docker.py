"""docker: needs a running daemon (available() asks it) and BuildKit (the default since Docker 23),
which `RUN --mount` needs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from shipyard.images.builders.base import CliBuilder


class DockerBuilder(CliBuilder):
    name = "docker"
    package = "docker.io"
    cache_marker = "CACHED"

    def available(self) -> bool:
        if self.executable is None:
            return False
        probe = subprocess.run(
            [self.executable, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=15,
        )
        return probe.returncode == 0

    def build_args(self, context: Path, tag: str) -> list[str]:
        # BuildKit builds layers with a cache by default and has no --format (always Docker).
        return ["build", "--progress", "plain", "--network", "none", "--tag", tag,
                "--file", str(context / "Dockerfile"), str(context)]  # fmt: skip

    def login_args(self, registry: str, username: str, authfile: Path) -> list[str]:
        # docker has no --authfile: a temporary config directory holds the login instead.
        return [
            "--config",
            str(authfile.parent),
            "login",
            "--username",
            username,
            "--password-stdin",
            registry,
        ]

    def push_args(self, tag: str, destination: str, authfile: Path | None, digestfile: Path) -> list[str]:
        self._run(["tag", tag, destination], what=f"tag {destination}")
        config = ["--config", str(authfile.parent)] if authfile else []
        return [*config, "push", destination]
