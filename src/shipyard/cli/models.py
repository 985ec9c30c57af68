"""`shipyard models list|show|history|alias set|alias delete`."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli.common import Output, OutputOpt, ProjectOpt, WorkspaceOpt, console, context, emit, table
from shipyard.cli.name_args import ModelNameArg, model_ref_check, name_check

app = typer.Typer(help="Registered models, versions and aliases.", no_args_is_help=True)


@app.command("list")
def list_cmd(
    project: ProjectOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.text
) -> None:
    """List registered models with their latest version and aliases."""
    from shipyard.registry import list_models

    _, ws = context(project, workspace)
    rows = list_models(ws)

    def render(data):
        shown = [r | {"aliases": ", ".join(f"{a}→v{v}" for a, v in r["aliases"].items())} for r in data]
        table(shown, ["name", "versions", "latest_version", "aliases"], empty="no models registered yet")

    emit(rows, output, render)


@app.command("show")
def show_cmd(
    name: Annotated[
        str, typer.Argument(help="Model name, NAME:VERSION or NAME@ALIAS.", callback=model_ref_check)
    ],
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Show a model's versions, or one version with its tags."""
    from shipyard.registry import parse_model_ref, resolve, show_model

    _, ws = context(project, workspace)
    ref = parse_model_ref(name)
    if ref.version or ref.alias:
        info = resolve(ws, ref).to_dict()
        emit(info, output, lambda d: console.print_json(data=d))
        return
    data = show_model(ws, ref.name)

    def render(d):
        rows = [v | {"aliases": ", ".join(v["aliases"]), "run_id": v["run_id"]} for v in d["versions"]]
        table(rows, ["version", "aliases", "run_id", "source"], title=d["name"])

    emit(data, output, render)


@app.command("history")
def history_cmd(
    name: ModelNameArg,
    alias: Annotated[str | None, typer.Option(help="Only this alias.", callback=name_check("alias"))] = None,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Every alias move of a model: who, when, from, to, why."""
    from shipyard.registry import alias_history, resolve

    _, ws = context(project, workspace)
    resolve(ws, name)  # a clear error for unknown models
    rows = alias_history(ws, name, alias)
    emit(
        rows,
        output,
        lambda d: table(d, ["when", "alias", "from", "to", "who", "why"], empty="no alias moves"),
    )


alias_app = typer.Typer(help="Move or delete aliases (recorded in the history).", no_args_is_help=True)
app.add_typer(alias_app, name="alias")


@alias_app.command("set")
def alias_set_cmd(
    name: ModelNameArg,
    alias: Annotated[str, typer.Argument(help="Alias to move.", callback=name_check("alias"))],
    version: Annotated[str, typer.Argument(help="Version number it points at.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the history).")] = "set by hand",
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Point ALIAS of model NAME at VERSION."""
    from shipyard.registry import set_alias

    _, ws = context(project, workspace)
    move = set_alias(ws, name, alias, version, reason=reason)

    def render(m):
        if m["moved"]:
            console.print(f"{m['model']}@{m['alias']}: v{m['from'] or '-'} → v{m['to']}")
        else:
            console.print(f"{m['model']}@{m['alias']} already points at v{m['to']}; nothing changed")

    emit(move, output, render)


@alias_app.command("delete")
def alias_delete_cmd(
    name: ModelNameArg,
    alias: Annotated[str, typer.Argument(help="Alias to delete.", callback=name_check("alias"))],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the history).")] = "deleted by hand",
    force: Annotated[
        bool, typer.Option("--force", help="Delete production even while an endpoint serves its version.")
    ] = False,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Delete ALIAS of model NAME (the version stays registered)."""
    from shipyard.registry import delete_alias

    _, ws = context(project, workspace)
    move = delete_alias(ws, name, alias, reason=reason, force=force)
    emit(move, output, lambda m: console.print(f"{m['model']}@{m['alias']}: deleted (was v{m['from']})"))
