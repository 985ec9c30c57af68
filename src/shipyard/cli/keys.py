"""`shipyard endpoints keys show|rotate`: endpoint keys, stored hashed, shown once."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli.common import Output, OutputOpt, ProjectOpt, WorkspaceOpt, console, context, emit, table
from shipyard.cli.name_args import EndpointArg

app = typer.Typer(help="Endpoint keys (Authorization: Bearer <key>).", no_args_is_help=True)


@app.command("show")
def show_cmd(
    endpoint: EndpointArg,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Which keys an endpoint has and when they were made (keys are stored hashed: never shown again)."""
    from shipyard.deploy.keys import key_info

    _, ws = context(project, workspace)
    rows = key_info(ws, endpoint)
    emit(
        rows,
        output,
        lambda d: table(
            d,
            ["endpoint", "slot", "fingerprint", "created_at"],
            empty=f"endpoint {endpoint!r} has no keys (auth off, or not deployed)",
        ),
    )


@app.command("rotate")
def rotate_cmd(
    endpoint: EndpointArg,
    slot: Annotated[str, typer.Option("--slot", help="primary or secondary")] = "primary",
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Replace a key; running servers accept the new one (and refuse the old) at once, no restart."""
    from shipyard.deploy.keys import rotate_key

    _, ws = context(project, workspace)
    key = rotate_key(ws, endpoint, slot)
    emit(
        {"endpoint": endpoint, "slot": slot, "key": key},
        output,
        lambda d: console.print(
            f"new {slot} key for {endpoint} (shown once): {d['key']}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        ),
    )
