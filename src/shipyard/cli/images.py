"""`shipyard images list|show|delete|prune`: the scoring images built from bundles
(`shipyard package --image`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shipyard.cli.common import (
    DryRunOpt,
    Output,
    OutputOpt,
    ProjectOpt,
    WorkspaceOpt,
    console,
    context,
    emit,
    table,
)
from shipyard.cli.name_args import ModelNameOpt, name_check

app = typer.Typer(help="Scoring images built from bundles.", no_args_is_help=True)


@app.command("list")
def list_cmd(
    model: ModelNameOpt = None,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Images recorded in the workspace, newest first."""
    from shipyard.images import list_images

    _, ws = context(project, workspace)
    rows = [info.to_dict() for info in list_images(ws, model)]
    emit(
        rows,
        output,
        lambda d: table(
            [_row_from(r) for r in d],
            ["id", "tag", "model", "size_mb", "builder", "build_seconds", "created_at"],
            empty="no images yet: shipyard package MODEL --image",
        ),
    )


def _row_from(d: dict) -> dict:
    return {
        **d,
        "id": d["id"][:12],
        "model": f"{d['model_name']} v{d['model_version']}",
        "size_mb": round(d["size_bytes"] / 1e6, 1) if d.get("size_bytes") else None,
    }


ImageArg = Annotated[
    str,
    typer.Argument(help="Image id (or its first characters) or tag.", callback=name_check("image reference")),
]


@app.command("show")
def show_cmd(
    image: ImageArg,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """One image: tag, digest, size, builder, bundle, base, push destination."""
    from shipyard.images import get_image

    _, ws = context(project, workspace)
    info = get_image(ws, image).to_dict()
    emit(info, output, lambda d: console.print("\n".join(f"{k}: {v}" for k, v in d.items() if v is not None)))


def _render_removals(rows: list[dict[str, Any]], empty: str) -> None:
    if not rows:
        console.print(empty)
    for r in rows:
        actions = f" ({', '.join(r['actions'])})" if r["actions"] else ""
        console.print(
            f"{r['status']}: image {r['id'][:12]} {r['tag']} ({r['model']}): {r['reason']}{actions}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@app.command("delete")
def delete_cmd(
    image: ImageArg,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Delete an image's record and its tag in the builder's store; refused while a deployment runs it."""
    from shipyard.images.remove import delete_image

    _, ws = context(project, workspace)
    removed = delete_image(ws, image).to_dict()
    emit(removed, output, lambda d: _render_removals([d], ""))


@app.command("prune")
def prune_cmd(
    keep: Annotated[int, typer.Option("--keep", min=0, help="Newest images to keep per model.")] = 3,
    dry_run: DryRunOpt = False,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Delete all but the newest images of each model; images a deployment runs are kept."""
    from shipyard.images.remove import prune_images

    _, ws = context(project, workspace)
    rows = [r.to_dict() for r in prune_images(ws, keep, dry_run)]
    emit(
        rows, output, lambda d: _render_removals(d, f"nothing to prune: no model has more than {keep} images")
    )
