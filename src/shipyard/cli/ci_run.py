"""`shipyard ci run pr|train|release|schedule`: a CI workflow's stages on this machine, against the
local workspace (shipyard/ci/local.py; docs/init.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.common import ProjectOpt, WorkspaceOpt, load_config
from shipyard.cli.name_args import name_check


def _ask(question: str) -> bool:
    return typer.confirm(question, default=False)


def ci_run_command(
    workflow: Annotated[str, typer.Argument(help="The workflow: pr, train, release or schedule.")],
    until: Annotated[
        str | None, typer.Option("--until", help="Stop after this stage (or job), e.g. lint, registered, qa.")
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            help="release: the model version (default: the last train run's new one).",
            callback=name_check("version number"),
        ),
    ] = None,
    artifact: Annotated[
        Path | None,
        typer.Option(
            "--artifact",
            help="release: the train run's model artifact folder (model.json), fetched from the CI "
            "system, when the train ran on another machine.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    approve: Annotated[
        bool, typer.Option("--approve", help="Give the approvals (as the CI system's protected environment).")
    ] = False,
    by: Annotated[
        str | None, typer.Option("--by", help="Who approves (default: SHIPYARD_ACTOR or you).")
    ] = None,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Run a CI workflow locally: the same stages, order and commands as the generated CI files."""
    from shipyard.ci.local import Options, run_workflow

    config = load_config(project)
    assert config is not None
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    options = Options(
        until=until,
        version=version,
        artifact=artifact,
        approve=approve,
        actor=by,
        workspace=workspace,
        confirm=_ask if interactive else None,
    )
    result = run_workflow(config, workflow, options)
    if result.exit_code:
        raise typer.Exit(result.exit_code)
