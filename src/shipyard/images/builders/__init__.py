"""Image builders, one module each; `get_builder` picks one by name or the first installed."""

from __future__ import annotations

from shipyard.errors import ConfigError, ShipyardError
from shipyard.images.builders.base import Builder, BuildResult, ImageDetails
from shipyard.images.builders.buildah import BuildahBuilder
from shipyard.images.builders.docker import DockerBuilder
from shipyard.images.builders.podman import PodmanBuilder

BUILDERS: dict[str, type[Builder]] = {
    "podman": PodmanBuilder,
    "docker": DockerBuilder,
    "buildah": BuildahBuilder,
}


def get_builder(name: str = "auto") -> Builder:
    """The builder `name` (podman, docker, buildah), or with `auto` the first installed of them."""
    if name == "auto":
        for cls in BUILDERS.values():
            builder = cls()
            if builder.available():
                return builder
        raise ShipyardError(
            "no image builder found: install one of the Debian packages 'podman' (recommended), "
            "'docker.io' or 'buildah'"
        )
    chosen = BUILDERS.get(name)
    if chosen is None:
        raise ConfigError(f"image.builder {name!r} is not supported: use auto, {', '.join(BUILDERS)}")
    builder = chosen()
    if not builder.available():
        hint = " (and a running Docker daemon)" if name == "docker" else ""
        raise ShipyardError(
            f"image builder {name} not found: install the Debian package {builder.package!r}{hint}"
        )
    return builder


__all__ = ["BUILDERS", "BuildResult", "Builder", "ImageDetails", "get_builder"]
