"""The `shipyard` command. User errors print without a traceback and exit non-zero."""

from __future__ import annotations

import sys

import typer

from shipyard.cli import (
    batch,
    cache,
    ci,
    compute,
    config_cmd,
    endpoints,
    env,
    gate,
    images,
    models,
    serve,
    workspace,
)
from shipyard.cli.doctor import doctor_command
from shipyard.cli.init_cmd import init_command
from shipyard.cli.reap import reap_command
from shipyard.cli.run import run_command

app = typer.Typer(
    name="shipyard",
    help="Shipyard: the MLOps loop (data check → train → gate → register → package → deploy → smoke test) "
    "anywhere.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("init")(init_command)
app.command("run")(run_command)
app.command("package")(endpoints.package_command)
app.command("deploy")(endpoints.deploy_command)
app.command("serve")(serve.serve_command)
app.command("rollback")(endpoints.rollback_command)
app.command("promote")(env.promote_command)
app.command("approve")(env.approve_command)
app.command("reject")(env.reject_command)
app.command("reap")(reap_command)
app.command("doctor")(doctor_command)
app.command("batch-score")(batch.batch_score_command)
app.add_typer(batch.jobs_app, name="batch-jobs")
app.add_typer(config_cmd.app, name="config")
app.add_typer(models.app, name="models")
app.add_typer(gate.app, name="gate")
app.add_typer(endpoints.app, name="endpoints")
app.add_typer(images.app, name="images")
app.add_typer(compute.app, name="compute")
app.add_typer(ci.app, name="ci")
app.add_typer(env.app, name="env")
app.add_typer(workspace.workspace_app, name="workspace")
app.add_typer(workspace.runs_app, name="runs")
app.add_typer(workspace.data_app, name="data")
app.add_typer(cache.app, name="cache")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    import click

    from shipyard.errors import ShipyardError

    try:
        # Without standalone mode click *returns* the code of a typer.Exit raised in a command
        # (Typer also turns Ctrl-C into Exit(130)).
        rc = app(args=argv, standalone_mode=False)
    except ShipyardError as exc:
        from shipyard.secrets.known import mask

        typer.echo(mask(f"error: {exc}"), err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    if rc == 130:
        typer.echo("interrupted", err=True)
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script wrapper."""
    sys.exit(main())
