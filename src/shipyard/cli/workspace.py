"""`shipyard workspace show`, `shipyard runs list|show`, `shipyard data check`."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli.common import Output, OutputOpt, ProjectOpt, WorkspaceOpt, console, context, emit, table

workspace_app = typer.Typer(help="The workspace: database and artifact store.", no_args_is_help=True)
runs_app = typer.Typer(help="Pipeline runs and their steps.", no_args_is_help=True)
data_app = typer.Typer(help="Data checks.", no_args_is_help=True)


@workspace_app.command("show")
def show_cmd(
    project: ProjectOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.text
) -> None:
    """Where this project's workspace is (get-or-create)."""
    config, ws = context(project, workspace)
    data = ws.describe() | {"project": str(config.source_file) if config else None}
    emit(data, output, lambda d: [console.print(f"{k:<15} {v}") for k, v in d.items()])


@runs_app.command("list")
def runs_list(
    limit: Annotated[int, typer.Option(help="How many, latest first.")] = 20,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Latest pipeline runs."""
    from shipyard.pipeline.records import list_pipeline_runs

    _, ws = context(project, workspace)
    rows = list_pipeline_runs(ws, limit)
    emit(
        rows,
        output,
        lambda d: table(
            d, ["id", "project", "status", "started_at", "duration_s"], empty="no pipeline runs yet"
        ),
    )


@runs_app.command("show")
def runs_show(
    run_id: str, project: ProjectOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.text
) -> None:
    """One pipeline run with its steps (an id prefix is enough)."""
    from shipyard.pipeline.records import get_pipeline_run

    _, ws = context(project, workspace)
    run = get_pipeline_run(ws, run_id)

    def render(r):
        console.print(f"pipeline run {r['id']}: {r['status']} (started {r['started_at']})")
        table(r["steps"], ["step", "status", "duration_s", "message"])
        if r["error"]:
            console.print(f"[red]error:[/red] {r['error']}")

    emit(run, output, render)


@data_app.command("check")
def data_check_cmd(project: ProjectOpt = None, output: OutputOpt = Output.text) -> None:
    """Run the project's data check on its own (schema, missing values, distribution)."""
    from shipyard.cli.common import load_config
    from shipyard.data.checks import run_data_check
    from shipyard.errors import ConfigError

    config = load_config(project)
    assert config is not None
    dc = config.data_check
    if dc is None:
        raise ConfigError(f"{config.source_file}: no data_check section")
    report = run_data_check(
        config.path(dc.path),
        schema_ref=dc.data_schema,
        reference_path=config.path(dc.reference) if dc.reference else None,
        tolerance_std=dc.tolerance_std,
        max_missing_fraction=dc.max_missing_fraction,
        project_dir=config.project_dir,
    )
    emit(report.to_dict(), output, lambda _: console.print(report.summary()))
    if not report.passed:
        raise typer.Exit(1)
