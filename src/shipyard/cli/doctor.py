"""`shipyard doctor [--dry-run]`: find and repair what interrupted runs and deployments left.

Stale `starting` deployments (their server stopped by its recorded identity), pipeline runs
whose runner died (marked killed, their MLflow runs KILLED), servers of ended deployments, and
the pipeline's endpoint not serving `production` after a killed run moved it
(pipeline/recovery.py). Exit 0 when everything is healthy or was repaired, 1 when something is
left: reported, failed, or (with --dry-run) waiting for a repair.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shipyard.cli.common import Output, OutputOpt, ProjectOpt, WorkspaceOpt, console, context, emit, table


def doctor_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report; change nothing.")] = False,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Find and repair what interrupted runs and deployments left behind."""
    from shipyard.config.overlay import root_project
    from shipyard.pipeline.recovery import recover

    config, ws = context(project, workspace, required=False)
    findings = recover(ws, root_project(config) if config is not None else None, dry_run=dry_run)
    rows = [f.to_dict() for f in findings]

    def render(items: list[dict[str, Any]]) -> None:
        if not items:
            console.print("healthy: no interrupted run, stale deployment or orphan server found")
            return
        shown = [{**r, "id": r["id"][:12], "actions": ", ".join(r["actions"])} for r in items]
        table(shown, ["kind", "id", "status", "problem", "actions"], title="shipyard doctor")

    emit(rows, output, render)
    if any(r["status"] != "repaired" for r in rows):
        raise typer.Exit(1)
