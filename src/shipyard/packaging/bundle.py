"""Service bundles: model files + score.py + pinned requirements + manifest, in the artifact store.

A bundle is the unit that serving loads and that images (a later capability) are built from:

    manifest.json  [score.py]  requirements.txt  model/<name>/<version>/<model files>

`model/<name>/<version>` is the folder AZUREML_MODEL_DIR points at, as in Azure ML. The manifest's
`flavor` says how it is served: `azureml` runs score.py's init()/run(); `pyfunc` (no entry script)
serves the MLflow model itself with MLflow's scoring protocol.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from shipyard.config.conda import is_conda_file, requirements_text
from shipyard.config.models import ProjectConfig
from shipyard.data.hashing import json_sha256, tree_sha256
from shipyard.errors import ConfigError, NotFoundError
from shipyard.names import safe_join
from shipyard.registry.models import ModelVersionInfo
from shipyard.store import utcnow
from shipyard.store.models import BundleRow
from shipyard.workspace import Workspace

MANIFEST = "manifest.json"
CODE_DIR = "code"  # deployment.code in the bundle: on the server's sys.path (serving/manifest.py)
CodePaths = tuple[tuple[str, Path], ...]
FLAVOR_AZUREML = "azureml"
FLAVOR_PYFUNC = "pyfunc"


@dataclass
class Bundle:
    id: str
    model_name: str
    model_version: str
    path: str
    content_hash: str
    manifest: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dims(value: Any) -> list[int] | None:
    """The shape of a regular nested list of numbers ([] for a number); None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return []
    if not isinstance(value, list) or not value:
        return None
    inner = [_dims(v) for v in value]
    if inner[0] is None or any(d != inner[0] for d in inner):
        return None
    return [len(value), *inner[0]]


def _signature(sample: dict[str, Any] | None) -> dict[str, Any]:
    """The input sample's whole shape with any number of rows (`[-1, 8, 8]` for 8x8 images), or
    nothing when "data" is not a regular array of numbers: no shape is then enforced."""
    rows = (sample or {}).get("data")
    dims = _dims(rows) if isinstance(rows, list) else None
    if not dims or len(dims) < 2:
        return {}
    return {"inputs": {"data": {"type": "array", "shape": [-1, *dims[1:]], "dtype": "float"}}}


def _read_sample(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"deployment.input_sample: file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"deployment.input_sample: {path} is not valid JSON ({exc})") from None


def build_bundle(
    ws: Workspace,
    model: ModelVersionInfo,
    *,
    entry_script: Path | None,
    requirements: Path | None,
    input_sample: Path | None,
    code: CodePaths = (),
) -> Bundle:
    """Assemble a bundle for a model version; identical content reuses the recorded bundle.

    With an entry script the bundle is an Azure ML one (`flavor: azureml`, score.py); without one
    (`entry_script=None`) it serves the MLflow model itself (`flavor: pyfunc`, no score.py), which
    must then have MLflow's python_function flavor.
    """
    if entry_script is not None and not entry_script.is_file():
        raise ConfigError(f"deployment.entry_script: {entry_script} does not exist")
    if requirements is not None and not requirements.is_file():
        raise ConfigError(f"deployment.requirements: {requirements} does not exist")
    sample = _read_sample(input_sample)
    # In a file:// store the bundle is built beside its final folder (then renamed into place);
    # for a remote store in a temporary folder, uploaded, and kept in this machine's cache.
    bundles_dir = safe_join(ws.local_artifact_dir, "bundles", model.name) if ws.local_artifacts else None
    if bundles_dir is not None:
        bundles_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".v{model.version}-", dir=bundles_dir))
    try:
        manifest = assemble(ws, model, staging, entry_script, requirements, sample, code)
        content_hash = manifest["content_hash"]
        existing = _find(ws, content_hash)
        if existing is not None and bundle_stored(ws, existing.id):
            return existing
        name = f"v{model.version}-{content_hash[:12]}"
        if bundles_dir is not None:
            final = bundles_dir / name
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)
            uri, stored_hash = str(final), None
        else:
            prefix = f"bundles/{model.name}/{name}"
            stored_hash = ws.artifact_cache.put_dir(ws.artifacts, staging, prefix)
            uri = ws.artifacts.uri(prefix)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _record(ws, model, uri, stored_hash, content_hash, manifest)


def assemble(
    ws: Workspace,
    model: ModelVersionInfo,
    staging: Path,
    entry_script: Path | None,
    requirements: Path | None,
    sample: dict[str, Any] | None,
    code: CodePaths = (),
) -> dict[str, Any]:
    """Lay out a bundle of `model` (its source downloaded from the workspace store) in the empty
    folder `staging`, with the project's `code` (relative name, path) under code/; returns the
    manifest it wrote."""
    import mlflow.artifacts

    from shipyard.tracking.model import model_id_of

    model_dir = staging / "model" / model.name / model.version
    model_dir.parent.mkdir(parents=True)
    source = model.source
    model_id = model_id_of(source)
    if model_id is not None:
        # A logged model's files, by its location: MLflow resolves `models:/<model_id>` with its
        # process-wide tracking URI, not the one passed to download_artifacts.
        source = ws.mlflow.get_logged_model(model_id).artifact_location
    try:
        fetched = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(staging / "dl"))
        downloaded = Path(fetched)
    except Exception:
        # MLflow reports an unreachable store as a missing path; ask the store itself, which
        # names the endpoint (StorageError) when it cannot be reached.
        if not ws.local_artifacts:
            ws.artifacts.exists("bundles")
        raise
    shutil.move(str(downloaded), model_dir)
    shutil.rmtree(staging / "dl", ignore_errors=True)
    if entry_script is not None:
        shutil.copy2(entry_script, staging / "score.py")
    else:
        _check_pyfunc_model(model, model_dir)
    _copy_code(code, staging / CODE_DIR)
    model_requirements = model_dir / "requirements.txt"
    if requirements is not None:
        # an Azure ML conda_dependencies.yml: its pip pins
        text = requirements_text(requirements) if is_conda_file(requirements) else requirements.read_text()
        if entry_script is None and model_requirements.is_file():
            # MLflow's pyfunc loader needs what the model's own list names (mlflow itself first).
            text = with_model_requirements(text, model_requirements.read_text())
        (staging / "requirements.txt").write_text(text)
    elif model_requirements.is_file():
        shutil.copy2(model_requirements, staging / "requirements.txt")
    content_hash = json_sha256([tree_sha256(staging), sample])  # before the manifest, which holds it
    manifest = {
        "model_name": model.name,
        "model_version": model.version,
        "run_id": model.run_id,
        "source": model.source,
        "flavor": FLAVOR_AZUREML if entry_script is not None else FLAVOR_PYFUNC,
        "entry_script": "score.py" if entry_script is not None else None,
        "model_dir": f"model/{model.name}/{model.version}",
        "requirements": "requirements.txt" if (staging / "requirements.txt").exists() else None,
        "code": CODE_DIR if code else None,
        "input_sample": sample,
        "signature": _signature(sample),
        "content_hash": content_hash,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def with_model_requirements(given: str, model: str) -> str:
    """`given` (the deployment's requirements) plus each line of the MLflow model's own
    requirements.txt for a distribution `given` does not name: the deployment's pin wins."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    def names(text: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            try:
                found[canonicalize_name(Requirement(line).name)] = line
            except InvalidRequirement:
                continue  # the image build and the environments report a bad line with its text
        return found

    named = names(given)
    missing = [line for name, line in names(model).items() if name not in named]
    if not missing:
        return given
    return (
        given.rstrip("\n")
        + "\n# what the MLflow model needs to load (its requirements.txt)\n"
        + "\n".join(missing)
        + "\n"
    )


def _copy_code(code: CodePaths, dest: Path) -> None:
    """deployment.code into the bundle's code/ folder, each under its path in the project."""
    for name, path in code:
        if not path.exists():
            raise ConfigError(f"deployment.code: {name} does not exist (looked for {path})")
        target = safe_join(dest, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, target)


def code_paths(project: ProjectConfig) -> CodePaths:
    """deployment.code as (name in the bundle, path in the project)."""
    d = project.deployment
    return tuple((name, project.path(name)) for name in (d.code if d is not None else []))


def _check_pyfunc_model(model: ModelVersionInfo, model_dir: Path) -> None:
    """A bundle without an entry script needs an MLflow model with the python_function flavor."""
    import yaml

    mlmodel = model_dir / "MLmodel"
    hint = "set deployment.entry_script to a score.py with init() and run()"
    if not mlmodel.is_file():
        raise ConfigError(
            f"model {model.name} version {model.version} ({model.source}) is not an MLflow model "
            f"(no MLmodel file), so it cannot be served without an entry script: {hint}"
        )
    try:
        flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors") or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"model {model.name} version {model.version}: cannot read its MLmodel file ({exc})"
        ) from None
    if "python_function" not in flavors:
        raise ConfigError(
            f"model {model.name} version {model.version} has no python_function flavor (flavors: "
            f"{', '.join(flavors) or 'none'}), so it cannot be served without an entry script: {hint}"
        )


def bundle_for_deployment(ws: Workspace, model: ModelVersionInfo, project: ProjectConfig) -> Bundle:
    """The bundle of `model` with the project's deployment files (score.py, requirements, sample).

    `deployment.entry_script: null` builds a pyfunc bundle that serves the MLflow model itself.
    """
    d = project.deployment
    if d is None:
        raise ConfigError(
            f"{project.source_file}: packaging needs a `deployment` section (entry_script, requirements, "
            "input_sample)"
        )
    return build_bundle(
        ws,
        model,
        entry_script=project.path(d.entry_script) if d.entry_script else None,
        requirements=project.path(d.requirements) if d.requirements else None,
        input_sample=project.path(d.input_sample) if d.input_sample else None,
        code=code_paths(project),
    )


def _record(
    ws: Workspace,
    model: ModelVersionInfo,
    uri: str,
    stored_hash: str | None,
    content_hash: str,
    manifest: dict,
) -> Bundle:
    bundle_id = content_hash[:32]
    with ws.store.session() as s:
        row = s.get(BundleRow, bundle_id)
        if row is None:
            row = BundleRow(
                id=bundle_id,
                model_name=model.name,
                model_version=model.version,
                uri=uri,
                content_hash=content_hash,
                manifest=manifest,
                created_at=utcnow(),
                stored_hash=stored_hash,
            )
            s.add(row)
        else:
            row.uri, row.stored_hash = uri, stored_hash
        s.flush()
        return _to_bundle(ws, row)


def _to_bundle(ws: Workspace, row: BundleRow) -> Bundle:
    """The record with `path` a folder on this machine: the file:// store's own folder, or this
    machine's cached copy of the stored one (downloaded once, verified by hash)."""
    path = row.uri
    if row.stored_hash is not None:
        prefix = ws.artifact_key(row.uri)
        path = str(ws.artifact_cache.fetch_dir(ws.artifacts, prefix, row.stored_hash))
    return Bundle(row.id, row.model_name, row.model_version, path, row.content_hash, row.manifest)


def bundle_stored(ws: Workspace, bundle_id: str) -> bool:
    """Is the bundle's content still there (its folder, or the complete stored copy)?"""
    from shipyard.artifacts.cache import read_marker

    with ws.store.session() as s:
        row = s.get(BundleRow, bundle_id)
        if row is None:
            return False
        uri, stored_hash = row.uri, row.stored_hash
    if stored_hash is None:
        return Path(uri).joinpath(MANIFEST).is_file()
    if ws.artifact_cache.path(stored_hash) is not None:
        return True
    try:
        marker = read_marker(ws.artifacts, ws.artifact_key(uri))
    except NotFoundError:
        return False
    return marker is not None and marker.get("content_hash") == stored_hash


def _find(ws: Workspace, content_hash: str) -> Bundle | None:
    if not bundle_stored(ws, content_hash[:32]):
        return None
    return get_bundle(ws, content_hash[:32])


def get_bundle(ws: Workspace, bundle_id: str) -> Bundle:
    with ws.store.session() as s:
        row = s.get(BundleRow, bundle_id)
        if row is None:
            raise NotFoundError(f"no bundle {bundle_id!r} in this workspace")
    return _to_bundle(ws, row)


def list_bundles(ws: Workspace, model_name: str | None = None) -> list[dict[str, Any]]:
    """Recorded bundles, newest first (`path` is where each is stored; nothing is downloaded)."""
    with ws.store.session() as s:
        q = select(BundleRow).order_by(BundleRow.created_at.desc())
        if model_name:
            q = q.where(BundleRow.model_name == model_name)
        return [
            Bundle(r.id, r.model_name, r.model_version, r.uri, r.content_hash, r.manifest).to_dict()
            | {"created_at": r.created_at.isoformat()}
            for r in s.scalars(q)
        ]
