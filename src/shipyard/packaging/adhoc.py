"""A bundle from loose files: an Azure ML project's score.py and model, as they are, no registry.

``shipyard serve --entry-script score.py --model model.pkl`` serves what an Azure ML user already
has. The folder written here has the layout and manifest keys of ``bundle.build_bundle``, so the
server cannot tell the two apart:

    manifest.json  score.py  [requirements.txt]  model/<name>/<version>/<model files>

A model file is copied into ``model/<name>/<version>/``; a model folder's contents are copied
into it (``AZUREML_MODEL_DIR`` points there, as in Azure ML). Nothing is recorded in a store.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from shipyard.data.hashing import tree_sha256
from shipyard.errors import ConfigError, UsageError
from shipyard.names import check_name

MANIFEST = "manifest.json"


def _signature(sample: Any) -> dict[str, Any]:
    # The same rule as packaging.bundle: {"data": [[n numbers], ...]} → inputs.data [-1, n].
    rows = sample.get("data") if isinstance(sample, dict) else None
    if isinstance(rows, list) and rows and isinstance(rows[0], list):
        return {"inputs": {"data": {"type": "array", "shape": [-1, len(rows[0])], "dtype": "float"}}}
    return {}


def _read_sample(path: Path | None) -> Any:
    if path is None:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"input sample {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"input sample {path} is not valid JSON ({exc})") from None


def default_model_name(model_path: Path) -> str:
    """The model name when none is given: the file or folder name without its suffix."""
    name = model_path.stem if model_path.is_file() else model_path.name
    return name or "model"


def bundle_from_files(
    entry_script: Path,
    model_path: Path,
    *,
    model_name: str,
    model_version: str,
    dest: Path,
    input_sample: Path | None = None,
    requirements: Path | None = None,
) -> Path:
    """Write a bundle folder for ``entry_script`` + ``model_path`` under ``dest``; return its path.

    ``dest`` is a parent folder (created if missing, e.g. a temp folder in the workspace or the
    system temp); the bundle is a new folder inside it, so repeated calls never collide.
    UsageError/ConfigError name the argument to fix when a file is missing or a name is unusable.
    """
    entry_script, model_path = Path(entry_script), Path(model_path)
    if not entry_script.is_file():
        raise UsageError(f"--entry-script {entry_script}: no such file")
    if not model_path.exists():
        raise UsageError(f"--model {model_path}: no such file or folder")
    if requirements is not None and not Path(requirements).is_file():
        raise UsageError(f"requirements {requirements}: no such file")
    check_name("model name", model_name, "--model-name")  # each becomes a folder name
    check_name("model version", model_version, "--model-version")
    sample = _read_sample(input_sample)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    bundle = Path(tempfile.mkdtemp(prefix=f"{model_name}-v{model_version}-", dir=dest))
    try:
        model_dir = bundle / "model" / model_name / model_version
        if model_path.is_dir():
            shutil.copytree(model_path, model_dir, symlinks=False)
        else:
            model_dir.mkdir(parents=True)
            shutil.copy2(model_path, model_dir / model_path.name)
        shutil.copy2(entry_script, bundle / "score.py")
        if requirements is not None:
            shutil.copy2(requirements, bundle / "requirements.txt")
        elif (model_dir / "requirements.txt").is_file():
            shutil.copy2(model_dir / "requirements.txt", bundle / "requirements.txt")
        content_hash = tree_sha256(bundle)  # before the manifest, as packaging.bundle does
        manifest = {
            "flavor": "azureml",
            "model_name": model_name,
            "model_version": model_version,
            "run_id": None,
            "source": str(model_path.resolve()),
            "entry_script": "score.py",
            "model_dir": f"model/{model_name}/{model_version}",
            "requirements": "requirements.txt" if (bundle / "requirements.txt").exists() else None,
            "input_sample": sample,
            "signature": _signature(sample),
            "content_hash": content_hash,
        }
        (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    except BaseException:
        shutil.rmtree(bundle, ignore_errors=True)
        raise
    return bundle
