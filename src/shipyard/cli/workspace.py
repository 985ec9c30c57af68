"""`shipyard workspace show|check|copy`, `shipyard runs list|show`, `shipyard data check`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shipyard.cli.common import (
    Output,
    OutputOpt,
    ProjectOpt,
    WorkspaceOpt,
    console,
    context,
    emit,
    err_console,
    table,
)
from shipyard.cli.name_args import name_check

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
    emit(data, output, _print_fields)


def _print_fields(data: dict[str, Any]) -> None:
    for key, value in data.items():
        console.print(f"{key:<15} {value}")


@workspace_app.command("check")
def check_cmd(
    project: ProjectOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.text
) -> None:
    """Can this machine use the workspace? Database, schemas, writes, artifact store (exit 1 if not).

    Creates or migrates the tables when the database answers, as any command would."""
    import os

    from shipyard.cli.common import load_config
    from shipyard.config.loader import resolve_workspace_settings
    from shipyard.errors import ShipyardError
    from shipyard.workspace.check import check_settings

    # A check answers in seconds: no long connection retries (the store's engine reads this).
    os.environ.setdefault("SHIPYARD_DB_RETRY_S", "2")
    try:
        config = load_config(project, required=False)
        settings = resolve_workspace_settings(config, cli={"root": workspace})
    except ShipyardError as exc:
        results = [{"check": "configuration", "ok": False, "detail": str(exc)}]
    else:
        results = check_settings(settings)

    def render(rows: list[dict]) -> None:
        from rich.table import Table

        t = Table(show_lines=False)
        for col in ("check", "ok", "detail"):
            t.add_column(col, overflow="fold")
        for r in rows:
            mark = "[green]ok[/green]" if r["ok"] else "[red]FAILED[/red]"
            t.add_row(r["check"], mark, r["detail"])
        console.print(t)

    emit(results, output, render)
    if not all(r["ok"] for r in results):
        raise typer.Exit(1)


@workspace_app.command("copy")
def copy_cmd(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            envvar="SHIPYARD_COPY_TO",
            show_envvar=True,
            help="Destination database URI (postgresql://user@host:5432/db). It may carry a password: "
            "pass it in SHIPYARD_COPY_TO rather than on the command line (or use PGPASSWORD / "
            "~/.pgpass); it is never printed.",
        ),
    ],
    artifacts_to: Annotated[
        str,
        typer.Option(
            "--artifacts-to", help="Destination artifact store (s3://bucket/prefix or file:///path)."
        ),
    ],
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Copy this workspace (runs, models, aliases, history, artifacts) into another, e.g. a shared one.

    Ids are kept; only what is missing is copied, so it is safe to run again."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from shipyard.workspace.copy import copy_workspace

    _, ws = context(project, workspace)
    columns = [TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=err_console) as bar:
        tasks: dict[str, object] = {}

        def progress(stage: str, name: str, done: int, total: int) -> None:
            if total <= 0:
                return
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)  # type: ignore[arg-type]

        report = copy_workspace(ws, to, artifacts_to, progress=progress)

    def render(r: dict) -> None:
        rows = [{"table": name, **n} for name, n in r["tables"].items() if n["source"] or n["copied"]]
        table(rows, ["table", "source", "dest", "copied"], title="rows")
        a = r["artifacts"]
        console.print(
            f"artifacts: {a['source']} in the source, {a['copied']} copied, {a['skipped']} already there"
        )
        console.print(
            f"[green]verified[/green]: every source row and object is in {r['dest']['database']} and "
            f"{r['dest']['artifacts']}"
        )

    emit(report, output, render)


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


@runs_app.command("files")
def runs_files(
    run_id: str,
    step: Annotated[
        str, typer.Option(help="The step whose log and outputs to get.", callback=name_check("step name"))
    ] = "train",
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """A step's log and outputs folder on this machine (fetched from a shared artifact store)."""
    from shipyard.pipeline.records import step_files

    _, ws = context(project, workspace)
    folder = step_files(ws, run_id, step)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())

    def render(d: dict) -> None:
        console.print(d["path"])
        for name in d["files"]:
            console.print(f"  {name}")

    emit({"path": str(folder), "files": files}, output, render)


@data_app.command("check")
def data_check_cmd(project: ProjectOpt = None, output: OutputOpt = Output.text) -> None:
    """Run the project's data check on its own (row count, schema, missing values, distribution)."""
    from shipyard.cli.common import load_config
    from shipyard.data.checks import check_project_data

    config = load_config(project)
    assert config is not None
    report = check_project_data(config)
    emit(report.to_dict(), output, lambda _: console.print(report.summary()))
    if not report.passed:
        raise typer.Exit(1)
