"""`shipyard env list|status|history|deploy` and `shipyard promote|approve|reject`: environments
(dev → qa → prod) and moving model versions along them (docs/environments.md)."""

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
from shipyard.cli.endpoints import _print_keys
from shipyard.cli.name_args import name_check

app = typer.Typer(
    help="Environments: what each serves, their history, deploying into them.", no_args_is_help=True
)
EnvArg = Annotated[
    str,
    typer.Argument(
        help="Environment name (environments: in shipyard.yaml).", callback=name_check("environment name")
    ),
]
ByOpt = Annotated[
    str | None, typer.Option("--by", help="Who decides (default: SHIPYARD_ACTOR, the CI user or you).")
]


def _project(project: Any, workspace: Any) -> tuple[Any, Any]:
    return context(project, workspace, required=True)


@app.command("list")
def list_cmd(
    project: ProjectOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.text
) -> None:
    """The environments, their endpoints and promotion chain."""
    from shipyard.config.overlay import check_env, env_deployment

    config, _ = _project(project, workspace)
    check_env(config, next(iter(config.environments), ""))
    rows = [
        {
            "env": n,
            "endpoint": env_deployment(config, n).name,
            "target": env_deployment(config, n).target,
            "promotes_from": e.promotes_from,
            "requires_approval": e.requires_approval,
            "ttl": e.ttl,
        }
        for n, e in config.environments.items()
    ]
    columns = ["env", "endpoint", "target", "promotes_from", "requires_approval", "ttl"]
    emit(rows, output, lambda d: table(d, columns))


@app.command("status")
def status_cmd(
    project: ProjectOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.text
) -> None:
    """Which model version serves each environment, since when, by whom and why."""
    from shipyard.release import env_status

    config, ws = _project(project, workspace)
    rows = [s.to_dict() for s in env_status(ws, config)]

    def render(d: list[dict]) -> None:
        shown = [
            r | {"model": f"{r['model_name']} v{r['model_version']}" if r["model_version"] else "—"}
            for r in d
        ]
        table(shown, ["env", "endpoint", "model", "url", "since", "by", "reason"])

    emit(rows, output, render)


@app.command("history")
def history_cmd(
    env: EnvArg, project: ProjectOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.text
) -> None:
    """Every change to an environment, newest first, with its reason."""
    from shipyard.config.overlay import check_env
    from shipyard.release import env_history

    config, ws = _project(project, workspace)
    check_env(config, env)
    rows = env_history(ws, env)
    columns = ["created_at", "action", "model_name", "model_version", "actor", "reason", "promotion_id"]
    emit(rows, output, lambda d: table(d, columns, empty=f"nothing has happened in {env} yet"))


@app.command("deploy")
def deploy_cmd(
    env: EnvArg,
    version: Annotated[
        str | None, typer.Option("--version", help="Model version (default: the newest).")
    ] = None,
    alias: Annotated[
        str | None,
        typer.Option("--alias", help="Or the version holding this alias.", callback=name_check("alias")),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in the history).")] = None,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Deploy a model version into an environment (smoke-tested; the old one serves until it passes)."""
    from shipyard.config.overlay import check_env
    from shipyard.errors import UsageError
    from shipyard.release import deploy_to_env

    if version and alias:
        raise UsageError("--version and --alias exclude each other")
    config, ws = _project(project, workspace)
    check_env(config, env)
    name = config.registry.model_name
    ref = f"{name}:{version}" if version else f"{name}@{alias}" if alias else name  # a bare name: the newest
    with err_console.status(f"deploying {ref} to {env}…"):
        result = deploy_to_env(ws, config, env, ref, reason=reason or "deployed by hand")

    def render(x: dict) -> None:
        console.print(
            f"[green]✓[/green] {x['env']}: {x['model_name']} v{x['model_version']} serving at {x['url']}"
        )
        _print_keys(x.get("new_keys"))  # a new endpoint's keys: shown once, stored as hashes

    emit(result, output, render)


def promote_command(
    model: Annotated[
        str | None,
        typer.Argument(
            help="Registered model (default: registry.model_name).", callback=name_check("model name")
        ),
    ] = None,
    to: Annotated[
        str, typer.Option("--to", help="Target environment.", callback=name_check("environment name"))
    ] = ...,  # type: ignore[assignment]
    version: Annotated[
        str | None, typer.Option("--version", help="Version (default: what the source environment serves).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Skip the source check (recorded).")] = False,
    approve: Annotated[
        bool,
        typer.Option(
            "--approve", help="Approve now (a CI job inside the CI system's protected environment)."
        ),
    ] = False,
    by: ByOpt = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in the history).")] = None,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Promote a model version into an environment from the one it promotes from."""
    from shipyard.release import promote

    config, ws = _project(project, workspace)
    with err_console.status(f"promoting to {to}…"):
        p = promote(
            ws,
            config,
            to,
            model_name=model,
            version=version,
            force=force,
            approve=approve,
            by=by,
            reason=reason,
        )
    emit(p.to_dict(), output, _render_promotion)


def _render_promotion(p: dict) -> None:
    what = f"{p['model_name']} v{p['model_version']} → {p['target_env']}"
    if p["status"] == "pending":
        console.print(
            f"promotion {p['id']}: {what} waits for approval: shipyard approve {p['id']}", markup=False
        )
    elif p["status"] == "deployed":
        url = f" at {p['url']}" if p.get("url") else ""
        console.print(f"[green]✓[/green] promotion {p['id']}: {what} is live{url}")
        _print_keys(p.get("new_keys"))
    else:
        console.print(f"promotion {p['id']}: {what}: {p['status']}", markup=False)


def approve_command(
    promotion_id: Annotated[str, typer.Argument(help="The id `shipyard promote` printed.")],
    by: ByOpt = None,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Approve a pending promotion and deploy it."""
    from shipyard.release import approve

    config, ws = _project(project, workspace)
    with err_console.status(f"deploying promotion {promotion_id}…"):
        p = approve(ws, config, promotion_id, by)
    emit(p.to_dict(), output, _render_promotion)


def reject_command(
    promotion_id: Annotated[str, typer.Argument(help="The id `shipyard promote` printed.")],
    by: ByOpt = None,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Reject a pending promotion (nothing is deployed)."""
    from shipyard.release import reject

    config, ws = _project(project, workspace)
    emit(reject(ws, config, promotion_id, by).to_dict(), output, _render_promotion)
