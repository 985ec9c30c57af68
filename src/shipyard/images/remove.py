"""Delete scoring images: one by id or tag (`shipyard images delete`), or all but the newest few
of each model (`shipyard images prune`).

Deleting an image drops its record and removes its tag from the builder's local store (podman,
docker, buildah) when that builder is installed and still has it. An image that a live
deployment runs (a container deployment that is starting, healthy or active) is never deleted:
`images delete` refuses with the deployment to delete first, `images prune` keeps it and says
why. A tag can be recorded more than once (the same bundle rebuilt): the tag leaves the builder's
store with its last record only. Pushed copies in a remote registry are not touched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from shipyard.errors import ShipyardError, UsageError
from shipyard.images.build import ImageInfo, get_image, list_images
from shipyard.images.builders import get_builder
from shipyard.store.models import DeploymentRow, ImageRow
from shipyard.workspace import Workspace

# Deployment states whose container runs its image.
_RUNNING = ("starting", "healthy", "active")


@dataclass
class Removal:
    """One image `delete` or `prune` removed (or, in a dry run, would remove), or kept."""

    id: str
    tag: str
    model: str
    status: str  # deleted | would delete | kept
    reason: str
    actions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _users(ws: Workspace, image: ImageInfo) -> list[str]:
    """Live deployments running this image, or another record of its tag (removing the tag from
    the builder's store would take theirs too)."""
    with ws.store.session() as s:
        same_tag = select(ImageRow.id).where(ImageRow.tag == image.tag)
        rows = s.scalars(
            select(DeploymentRow)
            .where(DeploymentRow.image_id.in_(same_tag), DeploymentRow.state.in_(_RUNNING))
            .order_by(DeploymentRow.created_at)
        )
        return [f"deployment {r.id[:12]} of endpoint {r.endpoint} ({r.state})" for r in rows]


def _remove(ws: Workspace, image: ImageInfo) -> list[str]:
    """Drop the record; untag the image in its builder's store when no other record has the tag."""
    with ws.store.session() as s:
        row = s.get(ImageRow, image.id)
        if row is not None:
            s.delete(row)
        s.flush()
        shared = s.scalars(select(ImageRow.id).where(ImageRow.tag == image.tag)).first() is not None
    actions = ["removed record"]
    if shared:
        return [*actions, f"kept {image.tag} in the builder's store: another record has that tag"]
    try:
        builder = get_builder(image.builder)
    except ShipyardError:
        return [*actions, f"{image.builder} is not installed here: its store was not touched"]
    try:
        builder.inspect(image.tag)
    except ShipyardError:
        return [*actions, f"{image.tag} was no longer in {builder.name}'s store"]
    builder.remove(image.tag)
    return [*actions, f"removed {image.tag} from {builder.name}"]


def _model(image: ImageInfo) -> str:
    return f"{image.model_name} v{image.model_version}"


def delete_image(ws: Workspace, ref: str) -> Removal:
    """Delete one image (id, id prefix of 6+ characters, or tag); refuse while a deployment runs it."""
    image = get_image(ws, ref)
    users = _users(ws, image)
    if users:
        raise ShipyardError(
            f"image {image.id[:12]} ({image.tag}) is in use by {', '.join(users)}: "
            "delete that deployment first (shipyard endpoints delete ENDPOINT)"
        )
    return Removal(image.id, image.tag, _model(image), "deleted", "asked for", _remove(ws, image))


def prune_images(ws: Workspace, keep: int = 3, dry_run: bool = False) -> list[Removal]:
    """Delete all but the `keep` newest images of each model; images in use stay (status kept)."""
    if keep < 0:
        raise UsageError(f"--keep must be 0 or more, not {keep}")
    seen: dict[str, int] = {}
    out = []
    for image in list_images(ws):  # newest first
        seen[image.model_name] = seen.get(image.model_name, 0) + 1
        if seen[image.model_name] <= keep:
            continue
        reason = f"older than the {keep} newest of model {image.model_name}"
        users = _users(ws, image)
        if users:
            out.append(Removal(image.id, image.tag, _model(image), "kept", f"in use by {', '.join(users)}"))
        elif dry_run:
            out.append(Removal(image.id, image.tag, _model(image), "would delete", reason))
        else:
            out.append(Removal(image.id, image.tag, _model(image), "deleted", reason, _remove(ws, image)))
    return out
