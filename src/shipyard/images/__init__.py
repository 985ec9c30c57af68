"""Scoring images: Dockerfile generation, offline wheels, builders (podman, docker, buildah)."""

from __future__ import annotations

from shipyard.images.build import ImageInfo, build_image, get_image, image_tag, list_images

__all__ = ["ImageInfo", "build_image", "get_image", "image_tag", "list_images"]
