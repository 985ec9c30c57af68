"""`shipyard batch-score MODEL INPUT --output PATH`: score a file with a model version's bundle.

MODEL is NAME@ALIAS, NAME:VERSION or NAME (its bundle is built as `shipyard package` builds it,
from the project's deployment section), or the path of a bundle folder. Progress goes to stderr
with Rich; the summary to stdout (JSON with --output-json).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.common import Output, ProjectOpt, WorkspaceOpt, console, context, emit, err_console


def _bundle(ws, config, model_ref: str):
    """A bundle folder given as a path, else the bundle of the registered model version."""
    if (Path(model_ref) / "manifest.json").is_file():
        return Path(model_ref)
    from shipyard.errors import ConfigError
    from shipyard.packaging.bundle import bundle_for_deployment
    from shipyard.registry import resolve

    if config is None:
        raise ConfigError(
            f"{model_ref}: building a model's bundle needs the project's shipyard.yaml (its deployment "
            "section): cd into the project or pass --project, or give a bundle folder instead"
        )
    return bundle_for_deployment(ws, resolve(ws, model_ref), config)


def batch_score_command(
    model: Annotated[str, typer.Argument(help="NAME@ALIAS, NAME:VERSION, NAME, or a bundle folder.")],
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="CSV or Parquet file to score.")],
    output: Annotated[
        Path,
        typer.Option(
            "--output", help="Folder (→ predictions-<UTC stamp>.parquet) or a file name ending .csv/.parquet."
        ),
    ],
    mini_batch_rows: Annotated[int, typer.Option("--mini-batch-rows", help="Rows per mini-batch.")] = 10_000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes.")] = os.cpu_count() or 1,
    error_threshold: Annotated[
        str,
        typer.Option("--error-threshold", help="Failed mini-batches tolerated: a count (3) or percent (5%)."),
    ] = "0",
    keep_order: Annotated[
        bool, typer.Option("--keep-order", help="Keep the input's rows and order (the default).")
    ] = False,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Write only this column and the prediction, in any order."),
    ] = None,
    output_json: Annotated[bool, typer.Option("--output-json", help="Print the summary as JSON.")] = False,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Score every row of INPUT with a model's bundle in parallel (Azure ML's ParallelRunStep)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from shipyard.batch import batch_score
    from shipyard.errors import UsageError

    if keep_order and key:
        raise UsageError("--keep-order and --key exclude each other: --key writes rows in any order")
    config, ws = context(project, workspace, required=False)
    bundle = _bundle(ws, config, model)
    columns = [
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("rows", total=None)

        def progress(rows: int, batches: int, total: int | None) -> None:
            bar.update(task, completed=rows, total=total)

        result = batch_score(
            ws,
            bundle,
            input_path,
            output,
            mini_batch_rows=mini_batch_rows,
            workers=workers,
            error_threshold=error_threshold,
            key=key,
            progress=progress,
        )

    def render(r: dict) -> None:
        console.print(
            f"scored {r['rows_scored']} of {r['rows']} rows in {r['mini_batches']} mini-batches "
            f"({r['duration_s']} s, {r['rows_per_s']} rows/s) with {r['model_name']} v{r['model_version']}"
        )
        for f in r["failed"]:
            rows = f"rows {f['first_row']}-{f['end_row'] - 1}"
            line = f"mini-batch {f['index']} ({rows}) failed: {f['error']}"
            console.print(line, style="yellow", markup=False)
        console.print(f"predictions: {r['output']}\nsummary: {r['summary_path']}")

    emit(result.to_dict(), Output.json if output_json else Output.text, render)
