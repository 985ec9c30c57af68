"""`shipyard ci generate|version|summary|smoke`: CI/CD workflows for the project (docs/ci.md).

`generate` writes the CI system's files; the other commands are what those files run between
Shipyard's own commands (the registered version, the job summary, the smoke test of a release),
so that a workflow's logic lives here and not in each CI system's shell snippets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.ci_run import ci_run_command
from shipyard.cli.common import (
    Output,
    OutputOpt,
    ProjectOpt,
    WorkspaceOpt,
    console,
    context,
    emit,
    load_config,
)
from shipyard.cli.env import EnvArg
from shipyard.secrets import known

app = typer.Typer(help="Generated CI/CD: GitHub Actions, Azure Pipelines, GitLab CI.", no_args_is_help=True)
app.command("run")(ci_run_command)


@app.command("generate")
def generate_cmd(
    provider: Annotated[
        str | None,
        typer.Option("--provider", help="github, azure or gitlab (default: ci.provider in shipyard.yaml)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Repository root to write into (default: the git repository holding the project, "
            "else the project folder).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files edited outside their user sections.")
    ] = False,
    project: ProjectOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Write PR checks, train on main, release (dev → qa → prod) and schedule workflows."""
    from shipyard.ci.generate import generate, provider_module, repository_root

    if provider is not None:
        provider_module(provider)  # a bad name is an error before anything else is read
    config = load_config(project)
    assert config is not None
    name = provider or config.ci.provider
    folder = out if out is not None else repository_root(config.project_dir)
    results = generate(config, name, folder, force=force)
    rows = [{"path": r.path, "status": r.status} for r in results]

    def render(data: list[dict]) -> None:
        for r in data:
            console.print(f"{r['status']:<11} {folder / r['path']}", markup=False, highlight=False)
        if not config.environments:
            console.print(
                "no release workflow: add environments (dev, qa, prod) to shipyard.yaml "
                "(docs/environments.md) and generate again",
                markup=False,
            )

    emit(rows, output, render)


@app.command("version")
def version_cmd(
    outputs: Annotated[Path, typer.Argument(help="The --outputs folder of `shipyard run`.")],
) -> None:
    """Print the model version the run registered, or nothing when it registered no new one."""
    from shipyard.ci.outputs import registered_version

    version = registered_version(outputs)
    if version is not None:
        typer.echo(version)


@app.command("summary")
def summary_cmd(
    outputs: Annotated[Path, typer.Argument(help="The --outputs folder of `shipyard run`.")],
) -> None:
    """Print the run's gate verdict and registration as Markdown (for a CI job summary)."""
    from shipyard.ci.outputs import summary_markdown

    typer.echo(known.mask(summary_markdown(outputs)), nl=False)  # goes into a CI job summary


@app.command("smoke")
def smoke_cmd(
    env: EnvArg,
    version: Annotated[
        str | None, typer.Option("--version", help="Fail unless the environment serves this version.")
    ] = None,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Smoke-test what an environment serves (the sample request to its URL); nothing is stopped."""
    from shipyard.ci.outputs import smoke
    from shipyard.config.overlay import check_env

    config, ws = context(project, workspace, required=True)
    check_env(config, env)
    result = smoke(ws, config, env, version or None)
    emit(
        result,
        output,
        lambda r: console.print(
            f"[green]✓[/green] {r['env']}: {r['model_name']} v{r['model_version']} at {r['url']}: "
            "smoke test passed"
        ),
    )
