"""Options and helpers shared by every command: project/workspace resolution and output."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any, cast

import typer
from rich.console import Console

from shipyard.config.loader import find_project_file, load_project, resolve_workspace_settings
from shipyard.config.models import ProjectConfig
from shipyard.errors import ConfigError
from shipyard.secrets import known
from shipyard.workspace import Workspace

# Everything the CLI prints goes through the mask of known secret values (secrets/known.py).
# Rich uses only write, flush, isatty, fileno and encoding of its file: a MaskingStream has them.
console = Console(file=cast(IO[str], known.MaskingStream("stdout")))
err_console = Console(file=cast(IO[str], known.MaskingStream("stderr")), stderr=True)


class Output(StrEnum):
    text = "text"
    json = "json"


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="Print text or JSON.")]
ProjectOpt = Annotated[
    Path | None,
    typer.Option("--project", "-p", help="Project folder or shipyard.yaml (default: nearest shipyard.yaml)."),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would be deleted; change nothing.")]
WorkspaceOpt = Annotated[
    str | None,
    typer.Option(
        "--workspace", "-w", help="Workspace folder (overrides SHIPYARD_WORKSPACE and shipyard.yaml)."
    ),
]


def load_config(project: Path | None, required: bool = True) -> ProjectConfig | None:
    """The project's config from --project, or the nearest shipyard.yaml upwards from here."""
    if project is not None:
        path = project / "shipyard.yaml" if project.is_dir() else project
        if not path.is_file():
            raise ConfigError(f"--project {project}: no shipyard.yaml there")
        return load_project(path)
    found = find_project_file()
    if found is None:
        if required:
            raise ConfigError(
                "no shipyard.yaml in this folder or its parents: cd into a project, pass --project, "
                "or create one with the fields in docs/configuration.md"
            )
        return None
    return load_project(found)


def open_workspace(config: ProjectConfig | None, workspace: str | None) -> Workspace:
    settings = resolve_workspace_settings(config, cli={"root": workspace})
    return Workspace.get_or_create(settings)


def context(project: Path | None, workspace: str | None, required: bool = False):
    """(config or None, workspace) for commands that may run outside a project."""
    config = load_config(project, required=required)
    return config, open_workspace(config, workspace)


def emit(data: Any, output: Output, render=None) -> None:
    """Print `data` as JSON, or call `render(data)` for text (default: pretty JSON)."""
    if output is Output.json or render is None:
        sys.stdout.write(known.mask(json.dumps(data, indent=2, default=str)) + "\n")
    else:
        render(data)


def table(
    rows: list[dict[str, Any]], columns: list[str], title: str | None = None, empty: str = "nothing yet"
):
    """A Rich table of dict rows."""
    from rich.table import Table

    if not rows:
        console.print(f"[dim]{empty}[/dim]")
        return
    t = Table(title=title, show_lines=False)
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(t)
