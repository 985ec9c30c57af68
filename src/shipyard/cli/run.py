"""`shipyard run`: the whole loop, with live progress and a summary (or JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.panel import Panel

from shipyard.cli.common import (
    Output,
    OutputOpt,
    ProjectOpt,
    WorkspaceOpt,
    console,
    emit,
    err_console,
    load_config,
    open_workspace,
)
from shipyard.config.loader import parse_param_overrides
from shipyard.data.report import DataCheckReport
from shipyard.errors import GateRejected, ShipyardError
from shipyard.pipeline.outputs import KEY_VAR, RegisteredModel, SmokeTestedEndpoint, TrainedRun
from shipyard.pipeline.runner import PipelineResult, run_pipeline
from shipyard.secrets import known

ICONS = {
    "succeeded": "[green]✓[/green]",
    "cached": "[cyan]↺[/cyan]",
    "failed": "[red]✗[/red]",
    "skipped": "[yellow]-[/yellow]",
}


class RichReporter:
    """One line per finished step, a spinner while a step runs."""

    def __init__(self, console_):
        self.console = console_
        self.status = None

    def step_started(self, step: str) -> None:
        self.status = self.console.status(f"[bold]{step}[/bold] running…")
        self.status.start()

    def step_finished(self, step: str, status: str, duration_s: float, message: str | None) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None
        note = f"  [dim]{message.splitlines()[0]}[/dim]" if message and status != "failed" else ""
        self.console.print(f"{ICONS.get(status, '?')} {step:<11} {status:<9} {duration_s:6.2f}s{note}")


def summarize(result: PipelineResult) -> dict[str, Any]:
    """The facts a user (or CI) wants from a run, as one JSON-able record."""
    o = result.outputs
    summary: dict[str, Any] = {
        "pipeline_run_id": result.pipeline_run_id,
        "status": result.status,
        "error": result.error,
        "steps": [{k: s[k] for k in ("step", "status", "duration_s", "message")} for s in result.steps],
        "cached_steps": [s["step"] for s in result.steps if s["status"] == "cached"],
    }
    data_check = o.get("data_check")
    if isinstance(data_check, DataCheckReport):
        summary["data_check"] = {
            "passed": data_check.passed,
            "rows": data_check.rows,
            "dataset_hash": data_check.dataset_hash,
        }
    train = o.get("train")
    if isinstance(train, TrainedRun):
        summary["run"] = train.run_json()
    gate = result.gate  # the final decision: made again when production moved under the run
    if gate is not None:
        summary["gate"] = {
            "verdict": gate.verdict,
            "reason": gate.reason,
            "metric": gate.metric,
            "direction": gate.direction,
            "candidate_value": gate.candidate_value,
            "champion_version": gate.champion_version,
            "champion_value": gate.champion_value,
        }
    register = o.get("register")
    if isinstance(register, RegisteredModel) and register.version is not None:
        summary["model"] = register.model_json()
    smoke = o.get("smoke_test")
    if isinstance(smoke, SmokeTestedEndpoint):
        summary["endpoint"] = smoke.endpoint_json()
    if result.recovered:  # what interrupted runs had left, repaired first (pipeline/recovery.py)
        summary["recovered"] = result.recovered
    if result.new_keys:
        summary["new_keys"] = result.new_keys
    return summary


def _render(summary: dict[str, Any]) -> None:
    lines = []
    if "data_check" in summary:
        rows = summary["data_check"]["rows"]
        lines.append(f"Data check   passed ({rows} row{'' if rows == 1 else 's'})")
    if "run" in summary:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(summary["run"]["metrics"].items()))
        lines.append(f"Run          {summary['run']['run_id']}  {metrics}")
    if "gate" in summary:
        g = summary["gate"]
        color = {"passed": "green", "rejected": "yellow", "skipped": "cyan"}[g["verdict"]]
        lines.append(f"Gate         [{color}]{g['verdict']}[/{color}]: {g['reason']}")
    if "model" in summary:
        m = summary["model"]
        state = "registered" if m["created"] else "already registered"
        lines.append(
            f"Model        {m['name']} v{m['version']} ({state}; aliases: {', '.join(m['aliases']) or '-'})"
        )
    if "endpoint" in summary:
        e = summary["endpoint"]
        lines.append(f"Endpoint     {e['url']}  (deployment {e['deployment_id'][:8]})")
        lines.append(f"Smoke test   passed ({e.get('latency_ms') or 0:.0f} ms)")
    steps = summary["steps"]
    if steps and all(s["status"] in ("cached", "skipped") for s in steps):
        lines.append(
            f"Cache        all {len(summary['cached_steps'])} steps reused from cache (nothing changed)"
        )
    elif summary["cached_steps"]:
        lines.append(f"Cache        reused: {', '.join(summary['cached_steps'])}")
    if summary["error"]:
        lines.append(f"[red]Error[/red]        {summary['error']}")
    for r in summary.get("recovered", []):
        done = f" ({', '.join(r['actions'])})" if r["actions"] else ""
        lines.append(f"Recovered    {r['kind']} {r['id'][:12]}: {r['problem']}{done}".replace("[", r"\["))
    style = {"succeeded": "green", "rejected": "yellow"}.get(summary["status"], "red")
    curl = summary.get("endpoint", {}).get("curl")
    console.print(
        Panel(
            "\n".join(lines),
            title=f"pipeline run {summary['pipeline_run_id'][:8]}: {summary['status']}",
            border_style=style,
            expand=False,
        )
    )
    if summary.get("new_keys"):
        keys = summary["new_keys"]
        console.print("Endpoint keys (shown once, stored only as hashes):", style="bold yellow")
        for slot, key in keys.items():
            console.print(f"  {slot}: {key}", soft_wrap=True, markup=False, highlight=False)
    if curl:
        # Outside the panel so that it copies as one line.
        if summary["endpoint"].get("auth"):
            hint = (
                f"export {KEY_VAR}=<primary key>"
                if summary.get("new_keys")
                else f"export {KEY_VAR}=<a key of this endpoint>  # keys rotate makes one"
            )
            console.print(hint, soft_wrap=True, markup=False, highlight=False)
        console.print("Try it:", style="bold")
        console.print(curl, soft_wrap=True, markup=False, highlight=False)


def write_outputs(folder: Path, summary: dict[str, Any]) -> list[str]:
    """The hand-off files for the next CI job: run.json always, model.json and endpoint.json when
    the run has a model version / a smoke-tested endpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "run.json": {
            k: summary.get(k)
            for k in ("pipeline_run_id", "status", "error", "run", "gate", "data_check", "steps")
        }
    }
    if "model" in summary:
        files["model.json"] = summary["model"]
    if "endpoint" in summary:
        files["endpoint.json"] = summary["endpoint"] | {"model": summary.get("model")}
    for name, data in files.items():
        (folder / name).write_text(known.mask(json.dumps(data, indent=2, default=str)) + "\n")
    return sorted(files)


def run_command(
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Override a parameter: KEY=VALUE.")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run every step, ignore cached outputs.")
    ] = False,
    from_step: Annotated[
        str | None, typer.Option("--from", help="Re-run from this step on (earlier steps may be cached).")
    ] = None,
    until_step: Annotated[
        str | None, typer.Option("--until", help="Stop after this step (e.g. register: no deployment).")
    ] = None,
    fail_on_reject: Annotated[
        bool, typer.Option("--fail-on-reject", help="Exit 3 when the gate rejects.")
    ] = False,
    outputs: Annotated[
        Path | None, typer.Option("--outputs", help="Write run.json, model.json, endpoint.json here.")
    ] = None,
    output: OutputOpt = Output.text,
) -> None:
    """Run the pipeline: data check → train → evaluate → register → package → deploy → smoke test."""
    config = load_config(project)
    assert config is not None
    overrides = parse_param_overrides(param or [])
    ws = open_workspace(config, workspace)
    ui = err_console if output is Output.json else console
    if output is Output.text:
        console.print(f"[bold]shipyard run[/bold] {config.name} — workspace {ws.root}")
    result = run_pipeline(
        ws,
        config,
        params=overrides,
        no_cache=no_cache,
        from_step=from_step,
        until_step=until_step,
        reporter=RichReporter(ui),
    )
    summary = summarize(result)
    if outputs is not None:
        summary["outputs"] = write_outputs(outputs, summary)
    emit(summary, output, _render)
    if result.status == "failed":
        raise typer.Exit(1)
    if result.status == "rejected" and fail_on_reject:
        raise typer.Exit(GateRejected.exit_code)


__all__ = ["run_command", "summarize", "ShipyardError"]
