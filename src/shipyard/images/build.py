"""Build an OCI image from a bundle, record it, and optionally push it.

The build context is laid out under the workspace (`images/contexts/<model>-<version>-<hash>`) and
kept after the build, so what went into an image can be read and rebuilt by hand:

    Dockerfile  requirements.lock  wheels/  runtime.lock  runtime/  bundle/

The generated Dockerfile is also copied into the bundle folder, and `image.json` (tag, digest,
size: what CI needs next) is written beside it. A failed build raises with the last lines of the
build log and records nothing, so earlier images and their records stay as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select

from shipyard import distribution
from shipyard.config.packages import PackageSources
from shipyard.config.targets import ImageConfig
from shipyard.data.hashing import file_sha256
from shipyard.errors import NotFoundError, ShipyardError
from shipyard.images import dockerfile as df
from shipyard.images.builders import get_builder
from shipyard.images.credentials import resolve_secret
from shipyard.images.wheels import WheelSet, dependency_wheels, resolve_requirements, runtime_wheel
from shipyard.names import safe_join
from shipyard.packaging.bundle import Bundle
from shipyard.store import utcnow
from shipyard.store.models import ImageRow
from shipyard.workspace import Workspace

IMAGE_JSON = "image.json"
# Written into the bundle folder by builds: never part of the image's bundle layer.
_NOT_IN_IMAGE = {"Dockerfile", IMAGE_JSON}
Progress = Callable[[str], None]


@dataclass
class ImageInfo:
    id: str
    tag: str
    digest: str | None
    size_bytes: int | None
    builder: str
    bundle_id: str
    model_name: str
    model_version: str
    base_image: str
    pushed_to: str | None
    build_seconds: float | None
    created_at: str
    context_dir: str | None = None
    cached_steps: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _info(row: ImageRow, **extra: Any) -> ImageInfo:
    return ImageInfo(
        id=row.id,
        tag=row.tag,
        digest=row.digest,
        size_bytes=row.size_bytes,
        builder=row.builder,
        bundle_id=row.bundle_id,
        model_name=row.model_name,
        model_version=row.model_version,
        base_image=row.base_image,
        pushed_to=row.pushed_to,
        build_seconds=row.build_seconds,
        created_at=row.created_at.isoformat(timespec="seconds"),
        **extra,
    )


def _repo_name(name: str) -> str:
    """An image repository component from a model name (lowercase, [a-z0-9._-])."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")
    return cleaned or "model"


def image_tag(model_name: str, model_version: str, bundle_hash: str) -> str:
    """`shipyard/<model>:<version>-<bundlehash12>`."""
    version = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_version)
    return f"shipyard/{_repo_name(model_name)}:{version}-{bundle_hash[:12]}"


def _folder_hash(folder: Path) -> str:
    """Content hash of a bundle folder, leaving out what builds write into it."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name not in _NOT_IN_IMAGE and "__pycache__" not in path.parts:
            digest.update(f"{name}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _bundle_facts(bundle: Bundle | Path) -> tuple[Path, dict[str, Any], str, str]:
    """(folder, manifest, content hash, bundle id) of a Bundle record or a bundle folder."""
    if isinstance(bundle, Bundle):
        return Path(bundle.path), bundle.manifest, bundle.content_hash, bundle.id
    folder = Path(bundle)
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except FileNotFoundError:
        raise NotFoundError(f"{folder} is not a bundle folder: manifest.json not found") from None
    content_hash = manifest.get("content_hash") or _folder_hash(folder)
    return folder, manifest, content_hash, content_hash[:32]


def _link_tree(src: Path, dest: Path, skip: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Copy a folder by hard links where possible (wheels and models can be large)."""

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = Path(folder) == src
        return {n for n in names if n == "__pycache__" or n.startswith(".") or (top and n in skip)}

    shutil.copytree(src, dest, copy_function=link, ignore=ignore)


def _write_context(context: Path, bundle_dir: Path, deps: WheelSet, runtime: WheelSet, text: str) -> None:
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    _link_tree(deps.path, context / df.WHEELS_DIR)
    _link_tree(runtime.path, context / df.RUNTIME_DIR)
    _link_tree(bundle_dir, context / df.BUNDLE_CONTEXT_DIR, skip=_NOT_IN_IMAGE)
    (context / df.REQUIREMENTS_LOCK).write_text(deps.lock)
    (context / df.RUNTIME_LOCK).write_text(runtime.lock)
    (context / "Dockerfile").write_text(text)
    (context / ".dockerignore").write_text("Dockerfile\n.dockerignore\n")


def _shipyard_version() -> str:
    try:
        return distribution.version()
    except metadata.PackageNotFoundError:
        return "unknown"


def registry_credentials(cfg: ImageConfig) -> tuple[str | None, str | None]:
    """The registry user name and password their references name (None where not set)."""
    return (
        resolve_secret(cfg.registry_username, "image.registry_username"),
        resolve_secret(cfg.registry_password, "image.registry_password"),
    )


def push_image(cfg: ImageConfig, tag: str, progress: Progress | None = None) -> str:
    """Push the built image `tag` to `cfg.registry`; returns where it went (`dest@digest`)."""
    assert cfg.registry
    destination = f"{cfg.registry}/{tag.split('/', 1)[1]}"
    (progress or (lambda _msg: None))(f"pushing to {destination}")
    username, password = registry_credentials(cfg)
    digest = get_builder(cfg.builder).push(tag, destination, username=username, password=password)
    return f"{destination}@{digest}" if digest else destination


def build_image(
    ws: Workspace,
    bundle: Bundle | Path,
    image_cfg: ImageConfig | None = None,
    *,
    push: bool = False,
    progress: Progress | None = None,
    git_commit: str | None = None,
    packages: PackageSources | None = None,
) -> ImageInfo:
    """Build (and with `push`, push) the scoring image of `bundle`; record and return it. The
    wheels come from `packages` (the deployment's indexes and find-links) when given."""
    cfg = image_cfg or ImageConfig()
    say = progress or (lambda _msg: None)
    if push and not cfg.registry:
        raise ShipyardError("pushing needs image.registry (e.g. registry.example.com/team) in the deployment")
    builder = get_builder(cfg.builder)
    bundle_dir, manifest, content_hash, bundle_id = _bundle_facts(bundle)
    model_name = str(manifest.get("model_name") or "model")
    model_version = str(manifest.get("model_version") or "0")
    tag = image_tag(model_name, model_version, content_hash)
    started = time.monotonic()

    say("resolving wheels")
    req_file = bundle_dir / "requirements.txt"
    requirements = resolve_requirements(req_file.read_text() if req_file.is_file() else None)
    cache = ws.subdir("cache", "wheels")
    deps = dependency_wheels(cache, requirements, packages=packages)
    runtime, wheel_name = runtime_wheel(cache)

    spec = df.DockerfileSpec(
        base=cfg.base,
        runtime_wheel=wheel_name,
        pip_wheel=str(deps.pip_wheel),
        model_name=model_name,
        model_version=model_version,
        bundle_hash=content_hash,
        git_commit=git_commit or manifest.get("git_commit"),
        shipyard_version=_shipyard_version(),
    )
    text = df.render_dockerfile(spec)
    context = safe_join(ws.subdir("images", "contexts"), f"{_repo_name(model_name)}-{tag.rsplit(':', 1)[1]}")
    _write_context(context, bundle_dir, deps, runtime, text)

    say(f"building {tag} with {builder.name}")
    result = builder.build(context, tag, log_path=context.parent / f"{context.name}.log")
    details = result.details

    pushed_to = push_image(cfg, tag, say) if push else None

    seconds = round(time.monotonic() - started, 2)
    row = ImageRow(
        id=uuid.uuid4().hex,
        tag=tag,
        digest=details.id or None,
        size_bytes=details.size_bytes or None,
        builder=builder.name,
        bundle_id=bundle_id,
        model_name=model_name,
        model_version=model_version,
        base_image=cfg.base,
        pushed_to=pushed_to,
        build_seconds=seconds,
        created_at=utcnow(),
    )
    with ws.store.session() as s:
        s.add(row)
        s.flush()
        info = _info(row, context_dir=str(context), cached_steps=result.cached_steps)
    shutil.copy2(context / "Dockerfile", bundle_dir / "Dockerfile")
    (bundle_dir / IMAGE_JSON).write_text(json.dumps(info.to_dict(), indent=2, sort_keys=True) + "\n")
    say(f"built {tag} in {seconds:.1f} s")
    return info


def list_images(ws: Workspace, model_name: str | None = None) -> list[ImageInfo]:
    """Recorded images, newest first."""
    with ws.store.session() as s:
        q = select(ImageRow).order_by(ImageRow.created_at.desc())
        if model_name:
            q = q.where(ImageRow.model_name == model_name)
        return [_info(r) for r in s.scalars(q)]


def get_image(ws: Workspace, id_or_tag: str) -> ImageInfo:
    """An image by id (or an id prefix of 6+ characters, as `images list` shows) or tag (the
    newest build of a tag)."""
    by_id = ImageRow.id.startswith(id_or_tag) if len(id_or_tag) >= 6 else ImageRow.id == id_or_tag
    with ws.store.session() as s:
        q = select(ImageRow).where(or_(by_id, ImageRow.tag == id_or_tag)).order_by(ImageRow.created_at.desc())
        row = s.scalars(q).first()
        if row is None:
            raise NotFoundError(f"no image {id_or_tag!r} in this workspace (see `shipyard images list`)")
        return _info(row)


def image_for_bundle(
    ws: Workspace,
    bundle: Bundle,
    image_cfg: ImageConfig,
    progress: Progress | None = None,
    packages: PackageSources | None = None,
) -> ImageInfo:
    """The newest recorded image of this bundle on this base that the builder still has, else a
    new build: deploying the same bundle twice builds once."""
    with ws.store.session() as s:
        rows = s.scalars(
            select(ImageRow)
            .where(ImageRow.bundle_id == bundle.id, ImageRow.base_image == image_cfg.base)
            .order_by(ImageRow.created_at.desc())
        )
        found = [_info(r) for r in rows]
    builder = get_builder(image_cfg.builder)
    for info in found:
        try:
            builder.inspect(info.tag)
        except ShipyardError:
            continue  # removed from the builder's store since
        return info
    return build_image(ws, bundle, image_cfg, progress=progress, packages=packages)
