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


def add_code_path(bundle_dir: Path, manifest: dict[str, Any]) -> None:
    """Put the bundle's `code` folder (deployment.code: the project's own modules) first on
    sys.path, for good: score.py, an unpickled model and a lazy import inside run() all find them,
    wherever the server runs (local, container, batch, Kubernetes)."""
    import sys

    code = manifest.get("code")
    if not code:
        return
    folder = (bundle_dir / str(code)).resolve()
    if not folder.is_dir() or not folder.is_relative_to(bundle_dir.resolve()):
        raise BundleError(f"{bundle_dir}/manifest.json: code folder {code!r} is not a folder of the bundle")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


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
