"""`shipyard package`, `shipyard deploy`, `shipyard serve`, `shipyard endpoints list|delete`."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli import keys
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

app = typer.Typer(help="Endpoints: where deployed models answer.", no_args_is_help=True)
app.add_typer(keys.app, name="keys")

ModelArg = Annotated[
    str | None,
    typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS (default: the project's model @production)."),
]


def _bundle(ws, config, model_ref: str | None):
    from shipyard.packaging.bundle import bundle_for_deployment
    from shipyard.registry import resolve

    model = resolve(ws, model_ref or f"{config.registry.model_name}@production")
    return bundle_for_deployment(ws, model, config)


def package_command(
    model: ModelArg = None,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Build the service bundle of a model version (model files, score.py, requirements, manifest)."""
    config, ws = context(project, workspace, required=True)
    bundle = _bundle(ws, config, model)
    emit(
        bundle.to_dict(),
        output,
        lambda b: console.print(
            f"bundle {b['id'][:12]} for {b['model_name']} v{b['model_version']}: {b['path']}"
        ),
    )


def deploy_command(
    model: ModelArg = None,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Deploy a model version to the project's endpoint: start, health-check, smoke-test, switch over."""
    from shipyard.deploy.endpoints import run_smoke_test, start_deployment

    config, ws = context(project, workspace, required=True)
    bundle = _bundle(ws, config, model)
    assert config is not None and config.deployment is not None
    d = config.deployment
    with err_console.status(f"starting {bundle.model_name} v{bundle.model_version} on endpoint {d.name}…"):
        dep = start_deployment(ws, bundle, d)
    new_keys = dep.new_keys
    with err_console.status("smoke test…"):
        dep = run_smoke_test(ws, dep.id, bundle.manifest.get("input_sample"), d.smoke_test.timeout_s)

    def render(x):
        console.print(
            f"[green]✓[/green] {x['endpoint']}: {x['model_name']} v{x['model_version']} serving at {x['url']}"
        )
        for slot, key in (x.get("new_keys") or {}).items():
            console.print(f"  {slot} key (shown once): {key}", markup=False, highlight=False, soft_wrap=True)

    emit(dep.to_dict() | ({"new_keys": new_keys} if new_keys else {}), output, render)


@app.command("list")
def list_cmd(
    project: ProjectOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.text
) -> None:
    """Endpoints with the deployment serving each."""
    from shipyard.deploy.endpoints import list_endpoints

    _, ws = context(project, workspace)
    rows = list_endpoints(ws)
    emit(
        rows,
        output,
        lambda d: table(
            d, ["endpoint", "state", "url", "model", "deployment_id", "pid"], empty="no endpoints"
        ),
    )


@app.command("delete")
def delete_cmd(
    name: str, project: ProjectOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.text
) -> None:
    """Stop an endpoint's deployments."""
    from shipyard.deploy.endpoints import delete_endpoint

    _, ws = context(project, workspace)
    stopped = delete_endpoint(ws, name)
    emit(
        {"endpoint": name, "stopped": stopped},
        output,
        lambda d: console.print(f"endpoint {name}: stopped {len(d['stopped'])} deployment(s)"),
    )
