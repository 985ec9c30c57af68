"""`shipyard batch-score MODEL INPUT --output PATH`: score a file with a model version's bundle;
`shipyard batch-jobs list|show`: the jobs recorded in the workspace.

MODEL is NAME@ALIAS, NAME:VERSION or NAME (its bundle is built as `shipyard package` builds it,
from the project's deployment section), or the path of a bundle folder. Progress goes to stderr
with Rich; the summary to stdout (JSON with --output-json). `--compute NAME` runs the workers on
a Ray cluster (Ray Data actors) instead of local processes. INPUT and --output may be URIs
(s3://bucket/key): downloaded first, uploaded after a successful job (batch/remote.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
from shipyard.cli.name_args import ModelNameOpt, model_ref_or_bundle_check, name_check

jobs_app = typer.Typer(help="Batch scoring jobs (`shipyard batch-score`).", no_args_is_help=True)


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


def _backend(ws, config, compute: str | None, workers: int | None):
    """None (local processes) without --compute; a Ray Data backend for a Ray compute target."""
    if compute is None:
        return None
    from shipyard.batch.backends.ray import RayData
    from shipyard.compute.resolve import compute_spec
    from shipyard.errors import ConfigError, UsageError

    spec = compute_spec(compute, ws, config)
    if spec.type != "ray":
        raise UsageError(
            f"--compute {compute} is a {spec.type} target: batch scoring runs on local processes or a Ray "
            "cluster (a compute target of type ray)"
        )
    if spec.client_address:
        return RayData(spec.client_address, workers)
    if spec.address:
        raise ConfigError(
            f"compute.{compute} is an existing Ray cluster ({spec.address}) without a driver address: set "
            f"compute.{compute}.client_address (e.g. ray://HEAD:10001) in shipyard.yaml"
        )
    from shipyard.compute.clusters import ray_connect_address

    return RayData(ray_connect_address(ws, compute), workers)


def _touch(ws, compute: str | None) -> None:
    """A job started or ended on a cluster Shipyard runs: its idle clock (`shipyard reap`) restarts."""
    if compute is not None:
        from shipyard.compute.clusters import touch

        touch(ws, compute)  # no-op for a cluster Shipyard did not start


def batch_score_command(
    model: Annotated[
        str,
        typer.Argument(
            help="NAME@ALIAS, NAME:VERSION, NAME, or a bundle folder.", callback=model_ref_or_bundle_check
        ),
    ],
    input_path: Annotated[
        str, typer.Argument(metavar="INPUT", help="CSV or Parquet file to score, or its s3://bucket/key.")
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            help="Folder (→ predictions-<UTC stamp>.parquet) or a file name ending .csv/.parquet; a "
            "path or an s3://bucket/prefix URI (uploaded when the job succeeded).",
        ),
    ],
    mini_batch_rows: Annotated[int, typer.Option("--mini-batch-rows", help="Rows per mini-batch.")] = 10_000,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Worker processes (default: this machine's CPUs), or Ray actors with --compute "
            "(default: the cluster's CPUs).",
        ),
    ] = None,
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
    compute: Annotated[
        str | None,
        typer.Option(
            "--compute",
            help="A Ray compute target to score on (default: local processes).",
            callback=name_check("compute name"),
        ),
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
    backend = _backend(ws, config, compute, workers)
    columns = [
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
    ]
    _touch(ws, compute)
    try:
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
                backend=backend,
                compute=compute,
                progress=progress,
            )
    finally:
        _touch(ws, compute)

    def render(r: dict) -> None:
        console.print(
            f"scored {r['rows_scored']} of {r['rows']} rows in {r['mini_batches']} mini-batches "
            f"({r['duration_s']} s, {r['rows_per_s']} rows/s) with {r['model_name']} v{r['model_version']}"
        )
        for f in r["failed"]:
            rows = f"rows {f['first_row']}-{f['end_row'] - 1}"
            line = f"mini-batch {f['index']} ({rows}) failed: {f['error']}"
            console.print(line, style="yellow", markup=False)
        console.print(f"predictions: {r['output']}\nsummary: {r['summary_path']}\njob: {r['job_id']}")

    emit(result.to_dict(), Output.json if output_json else Output.text, render)


@jobs_app.command("list")
def list_cmd(
    model: ModelNameOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 50,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Batch jobs recorded in the workspace, newest first."""
    from shipyard.batch.records import SHOWN_ID, list_jobs

    _, ws = context(project, workspace)
    rows = list_jobs(ws, model, limit)
    emit(
        rows,
        output,
        lambda d: table(
            [_job_row(r, SHOWN_ID) for r in d],
            ["id", "status", "model", "on", "rows", "seconds", "created"],
            empty="no batch jobs yet: shipyard batch-score MODEL INPUT --output PATH",
        ),
    )


def _job_row(d: dict, shown: int) -> dict:
    return {
        "id": d["id"][:shown],
        "status": d["status"],
        "model": f"{d['model_name']} v{d['model_version']}",
        "on": d["compute"] or d["backend"],
        "rows": None if d["rows"] is None else f"{d['rows_scored']}/{d['rows']}",  # scored of read
        "seconds": d["duration_s"],
        "created": (d["created_at"] or "")[:16].replace("T", " "),
    }


@jobs_app.command("show")
def show_cmd(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id (or its first 6+ characters).")],
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """One batch job: its record and the summary written beside its predictions."""
    from shipyard.batch.records import get_job

    _, ws = context(project, workspace)
    job = get_job(ws, job_id)

    def render(d: dict) -> None:
        console.print("\n".join(f"{k}: {v}" for k, v in d.items() if v is not None and k != "summary"))
        for f in d["summary"].get("failed", []):
            line = f"mini-batch {f['index']} (rows {f['first_row']}-{f['end_row'] - 1}) failed: {f['error']}"
            console.print(line, style="yellow", markup=False)
        if d["summary"].get("error"):
            console.print(f"error: {d['summary']['error']}", style="red", markup=False)

    emit(job, output, render)
