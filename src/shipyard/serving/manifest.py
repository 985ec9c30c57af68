"""A bundle's ``manifest.json`` as the serving side reads it, whatever the bundle's contract.

Both served contracts (an Azure ML score.py, an MLflow pyfunc model) read the same manifest and
report the model's name and version from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError

MANIFEST_FILE = "manifest.json"


class BundleError(ShipyardError):
    """The bundle cannot be served: manifest or entry script missing or broken."""


def read_manifest(bundle_dir: Path) -> dict[str, Any]:
    """Read and minimally check ``manifest.json`` of a bundle."""
    path = bundle_dir / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"{path} not found: is {bundle_dir} a bundle folder?") from exc
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {path}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: expected a JSON object")
    return manifest


class ManifestModel:
    """The model name and version of a served bundle, read from its ``manifest`` attribute."""

    manifest: dict[str, Any]

    @property
    def model_name(self) -> str | None:
        """The model name recorded in the manifest."""
        return self.manifest.get("model_name")

    @property
    def model_version(self) -> str | None:
        """The model version recorded in the manifest, as a string."""
        version = self.manifest.get("model_version")
        return None if version is None else str(version)
