"""`shipyard gate show`: recorded gate decisions."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli.common import Output, OutputOpt, ProjectOpt, WorkspaceOpt, context, emit, table
from shipyard.cli.name_args import ModelNameOpt

app = typer.Typer(help="The evaluation gate's recorded decisions.", no_args_is_help=True)


@app.command("show")
def show_cmd(
    model: ModelNameOpt = None,
    limit: Annotated[int, typer.Option(help="How many, latest first.")] = 10,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Show the latest gate decisions: candidate, champion, values, verdict and reason."""
    from shipyard.gate.records import list_decisions

    config, ws = context(project, workspace)
    name = model or (config.registry.model_name if config else None)
    rows = list_decisions(ws, name, limit)

    def render(data):
        shown = [
            r
            | {
                "when": r["created_at"].replace("T", " "),
                "candidate": f"{r['metric']}={_num(r['candidate_value'])} (run {r['candidate_run_id'][:8]})",
                "production": f"v{r['champion_version']}: {_num(r['champion_value'])}"
                if r["champion_version"]
                else "-",
            }
            for r in data
        ]
        table(
            shown,
            ["id", "when", "verdict", "candidate", "production", "reason"],
            empty="no gate decisions yet",
        )

    emit(rows, output, render)


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.6g}"
