"""buildah: builds without a daemon or podman; images land in the same store podman runs from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.images.builders.base import CliBuilder


class BuildahBuilder(CliBuilder):
    name = "buildah"
    package = "buildah"
    build_command = ("bud",)
    cache_marker = "Using cache"

    def inspect_raw(self, tag: str) -> dict[str, Any]:
        import json

        raw = json.loads(self._run(["inspect", "--type", "image", tag], what=f"inspect of {tag}"))
        docker = raw.get("Docker") or {}
        config = docker.get("config") or {}
        return {
            "Id": raw.get("FromImageID", ""),
            "Size": 0,  # buildah reports no image size; build.py records none
            "Config": {
                "Labels": config.get("Labels") or {},
                "User": config.get("User") or "",
                "Healthcheck": config.get("Healthcheck") or {},
                "ExposedPorts": config.get("ExposedPorts") or {},
                "Cmd": config.get("Cmd") or [],
            },
            "RootFS": {"Layers": (docker.get("rootfs") or {}).get("diff_ids") or []},
        }

    def push_args(self, tag: str, destination: str, authfile: Path | None, digestfile: Path) -> list[str]:
        auth = ["--authfile", str(authfile)] if authfile else []
        return ["push", *auth, "--digestfile", str(digestfile), tag, f"docker://{destination}"]
