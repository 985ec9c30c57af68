"""Wheels made here, so that environment builds in tests need no package index.

`write_wheel` writes a tiny pure-Python wheel; `installed_wheelhouse` repacks distributions
installed in this interpreter (the files their RECORD lists inside site-packages, with the tags
their WHEEL file names) into wheels, which is what a serving environment installs besides the
bundle's own requirements (Shipyard's serving runtime, pinned to the versions installed here).
With `packages: {no_index: true, find_links: [...]}` an environment then builds offline.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from shipyard.images.wheels import SERVING_REQUIREMENTS

_LEFT_OUT = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _zip(path: Path, dist_info: str, files: dict[str, bytes]) -> Path:
    record = [f"{name},{_digest(data)},{len(data)}" for name, data in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return path


def write_wheel(folder: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A pure-Python wheel of distribution `name` holding `files` (path in site-packages → text)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[-_.]+", "_", name).lower()
    dist_info = f"{stem}-{version}.dist-info"
    content = {path: text.encode() for path, text in files.items()}
    content[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    content[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    return _zip(folder / f"{stem}-{version}-py3-none-any.whl", dist_info, content)


def repack(name: str, folder: Path) -> Path:
    """A wheel of the installed distribution `name`, from its files in site-packages."""
    dist = metadata.distribution(name)
    listed = [f for f in dist.files or [] if ".." not in f.parts and "__pycache__" not in f.parts]
    dist_info = next(f.parts[0] for f in listed if f.parts[0].endswith(".dist-info"))
    content = {}
    for entry in listed:
        if entry.parts[0] == dist_info and entry.name in _LEFT_OUT:
            continue
        content[entry.as_posix()] = Path(str(entry.locate())).read_bytes()
    wheel_file = (dist.read_text("WHEEL") or "").splitlines()
    tags = [line.split(":", 1)[1].strip() for line in wheel_file if line.startswith("Tag:")]
    stem = dist_info.removesuffix(".dist-info")
    return _zip(folder / f"{stem}-{tags[0]}.whl", dist_info, content)


def runtime_closure(names: tuple[str, ...] = SERVING_REQUIREMENTS) -> set[str]:
    """`names` and every distribution they require here (markers evaluated, no extras)."""
    todo = [canonicalize_name(n) for n in names]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def installed_wheelhouse(folder: Path) -> Path:
    """Wheels of Shipyard's serving runtime and its dependencies, as installed here."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(runtime_closure()):
        repack(name, folder)
    return folder
