"""Wheels for an image, fetched on the host and installed offline in the build.

Builds get no network (`--network none`), so every package the image installs is a wheel in the
build context. Two sets:

- dependencies: the bundle's requirements.txt plus what the scoring server imports at serve time
  (SERVING_REQUIREMENTS, not Shipyard's whole dependency list: no MLflow, pandas, SQLAlchemy,
  Typer... unless the bundle asks for them), downloaded with `pip download` for CPython 3.11 on
  manylinux x86_64 (the base image's Python) and cached under the workspace by the hash of the
  resolved requirement lines, so a model-only change does not download again;
- the runtime: Shipyard's own wheel, built with `pip wheel --no-deps` from the source tree of the
  installed package (found at run time) and cached by the hash of that tree, or, for a Shipyard
  installed from a wheel file, that file.

Unpinned names are pinned to the version installed here, the environment that trained and tested
the model (a pickled scikit-learn model must be loaded by the version that saved it).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard import distribution
from shipyard.data.hashing import file_sha256, json_sha256
from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard.config.packages import PackageSources

# What `python -m shipyard.serving` imports (see serving/*): the HTTP stack, settings (pydantic,
# and PyYAML through shipyard.config), metrics, numpy for V2 tensors, and for images and files
# sent to /score python-multipart (form parsing) and Pillow (decoding).
SERVING_REQUIREMENTS = (
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "orjson",
    "prometheus-client",
    "pydantic",
    "pyyaml",
    "numpy",
    "python-multipart",
    "pillow",
)
PYTHON_VERSION = "3.11"
# Bookworm has glibc 2.36: every manylinux tag up to it runs there.
PLATFORMS = (
    "manylinux2014_x86_64",
    *(f"manylinux_2_{minor}_x86_64" for minor in range(17, 37)),
    "linux_x86_64",
)
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")
_TAIL_LINES = 25


@dataclass(frozen=True)
class WheelSet:
    """A folder of wheels and the lock text naming them (COPYed into the image as a cache key)."""

    path: Path
    lock: str
    pip_wheel: str | None = None  # file name of pip's wheel, which the build runs pip from


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def resolve_requirements(bundle_requirements: str | None) -> list[str]:
    """The bundle's requirement lines plus the serving runtime's, unpinned names pinned to here.

    A name the bundle lists wins over the runtime's entry for the same package.
    """
    lines: list[str] = []
    seen: set[str] = set()
    for raw in (bundle_requirements or "").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            raise ShipyardError(
                f"requirements.txt line {raw.strip()!r}: pip options are not supported in an image build; "
                "list one package per line"
            )
        match = _NAME.match(line)
        if match is None:
            raise ShipyardError(f"requirements.txt line {raw.strip()!r} is not a requirement")
        name, extras, spec = match.group(1), match.group(2) or "", match.group(3).strip()
        seen.add(_normalize(name))
        if not spec and (version := _installed_version(name)):
            line = f"{name}{extras}=={version}"
        lines.append(line)
    return lines + serving_runtime(seen)


def serving_runtime(exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """What the scoring server imports (SERVING_REQUIREMENTS) pinned to the versions installed here,
    less the names in `exclude` (normalized: a bundle's own entry for the same package wins)."""
    lines = []
    for name in SERVING_REQUIREMENTS:
        if _normalize(name) in exclude:
            continue
        version = _installed_version(name)
        lines.append(f"{name}=={version}" if version else name)
    return lines


def _run_pip(args: list[str], what: str, packages: PackageSources | None = None) -> None:
    """pip ARGS in this Python; `packages` (indexes, find-links) reach it as PIP_* variables only,
    and a secret among them is masked in the error."""
    from shipyard.config.package_sources import installer_environment

    extra, redactor = installer_environment(packages, "pip")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **extra} if extra else None,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-_TAIL_LINES:])
        raise ShipyardError(f"{what} failed (pip exit code {proc.returncode}):\n{redactor.redact(tail)}")


def _pip_requirement() -> str:
    version = _installed_version("pip")
    return f"pip=={version}" if version else "pip"


def _lock_text(header: str, folder: Path) -> str:
    names = sorted(p.name for p in folder.glob("*.whl"))
    body = [f"# {name} sha256={file_sha256(folder / name)}" for name in names]
    return "\n".join([header, *body]) + "\n"


def dependency_wheels(
    cache_root: Path,
    requirements: list[str],
    python: str = PYTHON_VERSION,
    packages: PackageSources | None = None,
) -> WheelSet:
    """Wheels for `requirements` (CPython `python`, default the base image's 3.11; manylinux
    x86_64), from the cache or pip download; from `packages` (shipyard.yaml's `packages:`: indexes
    and find-links, part of the cache key as written, a reference by its name) when given."""
    sources = packages.model_dump(mode="json") if packages is not None and not packages.empty else None
    key = json_sha256(
        {
            "requirements": [*requirements, _pip_requirement()],
            "python": python,
            "platforms": PLATFORMS,
            **({"packages": sources} if sources else {}),  # absent: the keys of before
        }
    )
    folder = cache_root / "deps" / key[:16]
    done = folder / ".complete"
    if not done.exists():
        staging = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        req_file = staging / "requirements.in"
        # pip itself comes as a wheel too: the build runs it from the wheel, so it never lands in
        # the image (python3 -m venv --without-pip).
        req_file.write_text("\n".join([*requirements, _pip_requirement()]) + "\n")
        platform_args = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
        try:
            _run_pip(
                [
                    "download",
                    "--quiet",
                    "--only-binary=:all:",
                    "--dest",
                    str(staging),
                    "--python-version",
                    python,
                    "--implementation",
                    "cp",
                    "--abi",
                    "cp" + python.replace(".", ""),
                    *platform_args,
                    "-r",
                    str(req_file),
                ],
                f"downloading wheels for CPython {python}",
                packages,
            )
        except ShipyardError:
            shutil.rmtree(staging, ignore_errors=True)  # nothing half-downloaded stays behind
            raise
        req_file.unlink()
        (staging / ".complete").write_text(key + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    lock = "\n".join(requirements) + "\n" + _lock_text("# wheels:", folder)
    pip_wheels = sorted(folder.glob("pip-*.whl"))
    if not pip_wheels:
        raise ShipyardError(f"{folder} has no pip wheel: delete the folder and build again")
    return WheelSet(folder, lock, pip_wheels[-1].name)


def shipyard_source() -> Path | None:
    """The project folder (with pyproject.toml) the running Shipyard was installed from, if any."""
    import shipyard

    package = Path(shipyard.__file__).resolve().parent
    name = re.compile(rf'(?m)^name\s*=\s*"{re.escape(distribution.NAME)}"')
    for candidate in package.parents:
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file() and name.search(pyproject.read_text()):
            return candidate
    return None


def _copy_source(source: Path, package: Path, dest: Path) -> None:
    """pyproject.toml, README/LICENSE and the package itself: what the wheel build reads."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "setup.py", "MANIFEST.in"):
        if (source / name).is_file():
            shutil.copy2(source / name, dest / name)
    relative = package.relative_to(source)
    shutil.copytree(package, dest / relative, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def runtime_wheel(cache_root: Path) -> tuple[WheelSet, str]:
    """The running Shipyard's own wheel (no dependencies); (wheels, file name). Built from its source
    tree when it runs from a checkout, else the wheel file it was installed from."""
    source = shipyard_source()
    if source is not None:
        return _wheel_from_source(cache_root, source)
    installed = distribution.installed_wheel()
    if installed is not None:
        return _wheel_from_file(cache_root, installed)
    raise ShipyardError(
        f"there is no wheel file of {distribution.requirement()} here (it came from an index, or the "
        "file it was installed from is gone): install it from a wheel file (`pip install "
        "./shipyard_mlops-*.whl`, e.g. from `make dist`) or from a checkout (`pip install -e <checkout>`)"
    )


def _cached_wheel(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{distribution.WHEEL_PREFIX}*.whl")) if folder.is_dir() else []


def _wheel_set(folder: Path, header: str) -> tuple[WheelSet, str]:
    wheels = _cached_wheel(folder)
    if len(wheels) != 1:
        raise ShipyardError(f"expected one Shipyard wheel in {folder}, found {len(wheels)}")
    return WheelSet(folder, _lock_text(header, folder)), wheels[0].name


def _wheel_from_file(cache_root: Path, wheel: Path) -> tuple[WheelSet, str]:
    """A copy of an installed wheel file in the cache (a folder of its own, as images COPY it)."""
    digest = file_sha256(wheel)
    folder = cache_root / "runtime" / f"wheel-{digest[:16]}"
    if not _cached_wheel(folder):
        staging = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.copy2(wheel, staging / wheel.name)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    return _wheel_set(folder, f"# shipyard wheel {digest}")


def _isolation(source: Path) -> list[str]:
    """No isolated build environment when this interpreter has the build backend already (the
    dev install does): the build then needs no index, so it works offline."""
    import tomllib

    from shipyard.installed import unmet

    with open(source / "pyproject.toml", "rb") as handle:
        requires = tomllib.load(handle).get("build-system", {}).get("requires", [])
    return ["--no-build-isolation"] if requires and not unmet(requires) else []


def _wheel_from_source(cache_root: Path, source: Path) -> tuple[WheelSet, str]:
    package = Path(__file__).resolve().parents[1]  # the shipyard package (this is images/wheels.py)
    digest = hashlib.sha256(file_sha256(source / "pyproject.toml").encode())
    for path in sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(f"{path.relative_to(package).as_posix()}\0{file_sha256(path)}\n".encode())
    tree = digest.hexdigest()
    folder = cache_root / "runtime" / tree[:16]
    if not _cached_wheel(folder):
        staging = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        # Build from a copy: an in-tree build would leave build/ and egg-info in the checkout.
        tree_copy = staging / "src-copy"
        _copy_source(source, package, tree_copy)
        _run_pip(
            [
                "wheel",
                "--quiet",
                "--no-deps",
                *_isolation(source),
                "--wheel-dir",
                str(staging),
                str(tree_copy),
            ],
            f"building Shipyard's wheel from {source}",
        )
        shutil.rmtree(tree_copy)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    return _wheel_set(folder, f"# shipyard source tree {tree}")
