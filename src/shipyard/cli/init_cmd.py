"""`shipyard init DIR`: a new project, ready for `shipyard run` and `shipyard ci run pr`
(shipyard/scaffold/; docs/init.md)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.common import Output, OutputOpt, console, emit
from shipyard.cli.name_args import name_check


def init_command(
    folder: Annotated[Path, typer.Argument(help="The project folder (created if missing).")],
    provider: Annotated[
        str, typer.Option("--provider", help="CI system of the generated files: github, azure or gitlab.")
    ] = "github",
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Project name (default: from the folder's name).",
            callback=name_check("new project name"),
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that already exist.")] = False,
    vendor_wheel: Annotated[
        bool,
        typer.Option(
            "--vendor-wheel",
            help="Copy this Shipyard's wheel into vendor/ and have the CI files install that file.",
        ),
    ] = False,
    output: OutputOpt = Output.text,
) -> None:
    """Create a project: model code, data, unit test, shipyard.yaml (dev/qa/prod) and CI files."""
    from shipyard.scaffold import init_project

    with console.status("building Shipyard's wheel", spinner="dots") if vendor_wheel else nullcontext():
        result = init_project(folder, provider=provider, name=name, force=force, vendor_wheel=vendor_wheel)
    data = {
        "folder": str(result.folder),
        "name": result.name,
        "provider": result.provider,
        "written": result.written,
        "overwritten": result.overwritten,
        "ci_files": result.ci_files,
    }

    def render(d: dict) -> None:
        for rel in d["written"]:
            console.print(f"created     {rel}", markup=False, highlight=False)
        for rel in d["overwritten"]:
            console.print(f"overwritten {rel}", markup=False, highlight=False)
        console.print(
            f"[green]✓[/green] project {d['name']} in {d['folder']} ({d['provider']} CI). Next:\n"
            f"  cd {d['folder']}\n  shipyard run          # the whole loop, deploys into dev\n"
            "  shipyard ci run pr    # the PR checks, here",
            highlight=False,
        )

    emit(data, output, render)
