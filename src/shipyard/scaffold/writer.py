"""`shipyard init DIR`: render every file of a new project in memory, check, then write.

Everything is decided before the first byte is written: the provider and the project name are
validated, the data set and its reference statistics are computed, shipyard.yaml is loaded with
the same loader every command uses, and the CI files are rendered by `shipyard.ci.generate` from
it. Only then are existing files looked for (all of them are listed, and nothing is written unless
`force`), and the files are written each through a temporary name; a failure half-way removes the
files this call created.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from shipyard.config.ci import PROVIDERS
from shipyard.errors import UsageError
from shipyard.names import check_name, is_valid
from shipyard.scaffold import templates as t

# `<name>-<env>` must be a valid endpoint name (deployment.name allows 41 characters).
DATA_CSV = "model/data/diabetes.csv"
REFERENCE = "model/data/reference_stats.json"
VENDOR = "vendor"


@dataclass
class InitResult:
    folder: Path
    name: str
    provider: str
    written: list[str]  # relative paths, in writing order
    overwritten: list[str]
    ci_files: list[str]


def project_name(folder: Path, name: str | None) -> str:
    """`name`, or one derived from the folder's name (lower case, dashes)."""
    if name is not None:
        return check_name("new project name", name, "--name")  # it names the endpoints: NAME-prod
    derived = re.sub(r"[^a-z0-9]+", "-", folder.resolve().name.lower()).strip("-")[:30].strip("-")
    if not is_valid("new project name", derived):
        raise UsageError(f"cannot make a project name from the folder name {folder.name!r}: pass --name NAME")
    return derived


def _requirements() -> str:
    """The seed model's packages pinned to the versions installed here (which the unit tests use)."""
    from importlib.metadata import PackageNotFoundError, version

    pins, missing = [], []
    for package in t.SEED_PACKAGES:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            missing.append(package)
    if missing:
        raise UsageError(
            f"shipyard init writes a scikit-learn project and needs {', '.join(missing)} installed: "
            f"python -m pip install {' '.join(missing)}"
        )
    return "\n".join(pins) + "\n"


def _data() -> dict[str, str]:
    """scikit-learn's diabetes data (shipped with it: no network) and its reference statistics."""
    from sklearn.datasets import load_diabetes

    from shipyard.data import compute_reference_stats

    df = load_diabetes(as_frame=True).frame  # 10 scaled float features + `target`
    stats = compute_reference_stats(df, source="sklearn.datasets.load_diabetes")
    return {DATA_CSV: df.to_csv(index=False), REFERENCE: json.dumps(stats, indent=2) + "\n"}


def _fill(text: str, name: str, provider: str, ci_files: str = "") -> str:
    return (
        text.replace("__NAME__", name)
        .replace("__MODEL__", f"{name}-model")
        .replace("__PROVIDER__", provider)
        .replace("__CI_FILES__", ci_files)
    )


def _ci_files(shipyard_yaml: str, provider: str) -> dict[str, str]:
    """The CI files `shipyard ci generate` writes for this shipyard.yaml, the project being the
    repository root. The file is loaded from a scratch folder with the loader every command uses,
    so a template that does not validate fails here, before anything is written."""
    from shipyard.ci.generate import render
    from shipyard.config.loader import load_project

    with tempfile.TemporaryDirectory(prefix="shipyard-init-") as scratch:
        path = Path(scratch) / "shipyard.yaml"
        path.write_text(shipyard_yaml)
        config = load_project(path)
        return render(config, provider, Path(scratch))


def _running_wheel() -> tuple[str, bytes]:
    """(file name, bytes) of the running Shipyard's wheel: built from its source checkout, or the
    wheel file it was installed from."""
    from shipyard.images.wheels import runtime_wheel

    with tempfile.TemporaryDirectory(prefix="shipyard-wheel-") as scratch:
        wheels, wheel_name = runtime_wheel(Path(scratch))
        return wheel_name, (wheels.path / wheel_name).read_bytes()


def render_project(
    name: str, provider: str, *, vendor_wheel: bool = False
) -> tuple[dict[str, str | bytes], list[str]]:
    """({relative path: text or bytes} of every file of a new project, the paths of its CI files).
    With `vendor_wheel`, the running Shipyard's wheel goes into vendor/ and ci.wheel names it."""
    if provider not in PROVIDERS:
        raise UsageError(f"unknown CI provider {provider!r}: use one of {', '.join(PROVIDERS)}")
    shipyard_yaml = _fill(t.SHIPYARD_YAML, name, provider)
    vendored: dict[str, str | bytes] = {}
    if vendor_wheel:
        wheel_name, wheel = _running_wheel()
        vendored[f"{VENDOR}/{wheel_name}"] = wheel
        shipyard_yaml += f"  wheel: {VENDOR}/{wheel_name}   # installed by the CI files (pip install FILE)\n"
    ci = _ci_files(shipyard_yaml, provider)
    ci_dirs = sorted({p.split("/")[0] + "/" if "/" in p else p for p in ci})
    files: dict[str, str | bytes] = {
        "model/train.py": t.TRAIN_PY,
        "model/score.py": t.SCORE_PY,
        "model/schema.py": t.SCHEMA_PY,
        "model/sample_request.json": t.SAMPLE_REQUEST,
        "model/requirements.txt": _requirements(),
        **_data(),
        "tests/test_train.py": t.TEST_TRAIN_PY,
        "shipyard.yaml": shipyard_yaml,
        "pyproject.toml": t.PYPROJECT_TOML,
        ".gitignore": t.GITIGNORE,
        "README.md": _fill(t.README_MD, name, provider, ", ".join(ci_dirs)),
        **vendored,
        **ci,
    }
    return files, list(ci)


def init_project(
    folder: Path,
    *,
    provider: str = "github",
    name: str | None = None,
    force: bool = False,
    vendor_wheel: bool = False,
) -> InitResult:
    """Write a new project into `folder` (created if missing); see the module docstring."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder")
    if provider not in PROVIDERS:
        raise UsageError(f"unknown CI provider {provider!r}: use one of {', '.join(PROVIDERS)}")
    project = project_name(folder, name)
    files, ci = render_project(project, provider, vendor_wheel=vendor_wheel)
    existing = [rel for rel in files if (folder / rel).exists()]
    not_files = [rel for rel in existing if not (folder / rel).is_file()]
    if not_files:
        raise UsageError(f"in {folder}, these are folders where init writes files: {', '.join(not_files)}")
    if existing and not force:
        listed = "\n  ".join(existing)
        raise UsageError(
            f"{folder} already has files that init would write:\n  {listed}\n"
            "nothing was written; pass --force to overwrite them, or choose an empty folder"
        )
    created: list[Path] = []
    try:
        for rel, text in files.items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.shipyard-init")
            if isinstance(text, bytes):
                tmp.write_bytes(text)
            else:
                tmp.write_text(text)
            os.replace(tmp, target)
            if rel not in existing:
                created.append(target)
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
    written = [rel for rel in files if rel not in existing]
    return InitResult(folder, project, provider, written, existing, ci)
