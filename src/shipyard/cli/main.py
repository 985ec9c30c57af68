"""The `shipyard` command. User errors and command-line mistakes print one `error:` line (and a JSON
object on stdout when JSON was asked for), never a traceback, and exit non-zero."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence

import typer
import typer.core
import typer.main

# Typer bundles its own click (pyproject: typer>=0.29); its exceptions are the ones raised here.
from typer._click.core import Command
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

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
    add_completion=True,
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


def asks_for_json(args: Sequence[str]) -> bool:
    """Whether the command line asked for JSON output. Read from the raw arguments, because an error
    may come before (or instead of) parsing them."""
    for i, arg in enumerate(args):
        if arg == "--":
            return False
        if arg in ("--output", "-o") and args[i + 1 : i + 2] == ["json"]:
            return True
        if arg in ("--output=json", "-o=json", "-ojson", "--output-json"):
            return True
    return False


def report_error(message: str, exit_code: int, kind: str, as_json: bool, hint: str | None = None) -> int:
    """`error: MESSAGE (HINT)` on one line of stderr (masked); also a JSON object on stdout when
    JSON was asked for. Returns `exit_code`."""
    from shipyard.secrets.known import mask

    typer.echo(mask(f"error: {message}" + (f" ({hint})" if hint else "")), err=True)
    if as_json:
        payload = {"error": message, "exit_code": exit_code, "type": kind, "hint": hint}
        sys.stdout.write(mask(json.dumps(payload)) + "\n")
    return exit_code


def usage_hint(exc: UsageError) -> str:
    """Where to read how the command that was called is used."""
    command_path = exc.ctx.command_path if exc.ctx is not None else "shipyard"
    return f"run '{command_path} --help' for usage"


def flags_without_type(command: Command) -> None:
    """Typer's Rich help prints `<bool>` beside flags, which take no value: blank that column for
    every flag of `command` and its subcommands, `--help` included."""
    help_option = command.get_help_option(typer.Context(command))
    for param in [*command.params, help_option]:
        if isinstance(param, typer.core.TyperOption) and param.is_flag:
            param.metavar = ""
    if isinstance(command, typer.core.TyperGroup):
        for sub in command.commands.values():
            flags_without_type(sub)


@functools.cache
def command() -> Command:
    """The click command tree of `app`, built once per process (Typer would rebuild it per call)."""
    built = typer.main.get_command(app)
    flags_without_type(built)
    return built


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    from shipyard.errors import ShipyardError

    args = sys.argv[1:] if argv is None else list(argv)
    as_json = asks_for_json(args)
    try:
        # Without standalone mode the code of a typer.Exit raised in a command is *returned*
        # (Typer also turns Ctrl-C into Exit(130)); Typer's click errors are raised to us.
        rc = command().main(args=args, prog_name="shipyard", standalone_mode=False)
    except ShipyardError as exc:
        return report_error(str(exc), exc.exit_code, type(exc).__name__, as_json)
    except NoArgsIsHelpError as exc:
        # `shipyard` or `shipyard models` alone: the help (already printed by Rich) is the answer.
        if exc.format_message():
            typer.echo(exc.format_message())
        return 0
    except UsageError as exc:
        message = " ".join(exc.format_message().split())  # click's message, on one line
        return report_error(message, exc.exit_code, "UsageError", as_json, usage_hint(exc))
    except ClickException as exc:
        return report_error(exc.format_message(), exc.exit_code, type(exc).__name__, as_json)
    except SystemExit as exc:  # shell completion (--show-completion, _SHIPYARD_COMPLETE) exits itself
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
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
