"""`shipyard config import-azureml`: show what Azure ML deployment/inference configs become.

The same mapping runs when shipyard.yaml names the files under `deployment.azureml`; this command
prints it as a `deployment:` block to paste (or to review), with a warning for every field that
has no equivalent. Paths in the block are relative to the current folder (the project's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.common import Output, OutputOpt, emit

app = typer.Typer(help="Project configuration.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Project configuration."""


@app.command("import-azureml")
def import_azureml_command(
    deployment_config: Annotated[
        Path,
        typer.Option("--deployment-config", help="deployment_config_aci.yml / deployment_config_aks.yml."),
    ],
    inference_config: Annotated[
        Path | None, typer.Option("--inference-config", help="inference_config.yml.")
    ] = None,
    output: OutputOpt = Output.text,
) -> None:
    """Print the shipyard.yaml `deployment:` block for Azure ML config files, and what is not carried over."""
    import yaml

    from shipyard.config.azureml import import_azureml

    fields, warnings = import_azureml(deployment_config, inference_config, Path.cwd())
    data = {"deployment": fields, "warnings": [w.to_dict() for w in warnings]}

    def render(d: dict) -> None:
        typer.echo(yaml.safe_dump({"deployment": d["deployment"]}, sort_keys=False).rstrip())
        for w in warnings:
            typer.echo(f"warning: {w}", err=True)
        if not warnings:
            typer.echo("every field was carried over", err=True)

    emit(data, output, render)
