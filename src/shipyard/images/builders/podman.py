"""podman: the default builder (daemonless; shares its image store with buildah)."""

from __future__ import annotations

from shipyard.images.builders.base import CliBuilder


class PodmanBuilder(CliBuilder):
    name = "podman"
    package = "podman"
    cache_marker = "Using cache"
