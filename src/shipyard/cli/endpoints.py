"""`shipyard package`, `shipyard deploy`, `shipyard serve`, `shipyard endpoints list|delete`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli import keys
from shipyard.cli.common import Output, OutputOpt, ProjectOpt, WorkspaceOpt, console, context, emit, table

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
    with console.status(f"starting {bundle.model_name} v{bundle.model_version} on endpoint {d.name}…"):
        dep = start_deployment(ws, bundle, d)
    new_keys = dep.new_keys
    with console.status("smoke test…"):
        dep = run_smoke_test(ws, dep.id, bundle.manifest.get("input_sample"), d.smoke_test.timeout_s)

    def render(x):
        console.print(
            f"[green]✓[/green] {x['endpoint']}: {x['model_name']} v{x['model_version']} serving at {x['url']}"
        )
        for slot, key in (x.get("new_keys") or {}).items():
            console.print(f"  {slot} key (shown once): {key}", markup=False, highlight=False, soft_wrap=True)

    emit(dep.to_dict() | ({"new_keys": new_keys} if new_keys else {}), output, render)


def serve_command(
    model: ModelArg = None,
    entry_script: Annotated[
        Path | None,
        typer.Option(
            "--entry-script",
            help="Serve this Azure ML score.py as it is, with --model, without a project or registry.",
        ),
    ] = None,
    model_path: Annotated[
        Path | None,
        typer.Option("--model", help="Model file or folder for --entry-script (AZUREML_MODEL_DIR holds it)."),
    ] = None,
    model_name: Annotated[
        str | None, typer.Option("--model-name", help="Model name (default: the --model file/folder stem).")
    ] = None,
    model_version: Annotated[str, typer.Option("--model-version", help="Model version.")] = "1",
    input_sample: Annotated[
        Path | None,
        typer.Option("--input-sample", help="JSON sample request (swagger example, input checks)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 5001,
    auth: Annotated[
        bool, typer.Option("--auth/--no-auth", help="Require a key (a new one is printed once).")
    ] = False,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Serve a model in the foreground (Ctrl-C stops it): a registered version (MODEL), or an
    Azure ML project's files as they are (--entry-script score.py --model model.pkl)."""
    import json
    import os
    import secrets
    import shutil
    import signal
    import tempfile

    from shipyard.errors import UsageError
    from shipyard.serving.__main__ import main as serve_main

    adhoc_options = {
        "--model": model_path,
        "--model-name": model_name,
        "--input-sample": input_sample,
    }
    if entry_script is not None:
        if model_path is None:
            raise UsageError("--entry-script needs --model MODEL_FILE_OR_FOLDER: the model score.py loads")
        if model is not None:
            raise UsageError(
                f"give either MODEL ({model!r}, a registered version) or --entry-script/--model (files), "
                "not both"
            )
    else:
        given = [name for name, value in adhoc_options.items() if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --entry-script score.py")

    def terminate(signum: int, frame: object) -> None:
        # uvicorn shuts down gracefully on SIGTERM, then re-raises it: end here, through the
        # `finally` below, instead of dying by the signal and leaving the temp folder behind.
        raise typer.Exit(0)

    try:
        previous_handler = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread (an in-process caller): leave signals alone
        previous_handler = None
    tmp = Path(tempfile.mkdtemp(prefix="shipyard-serve-"))
    try:
        if entry_script is not None:
            from shipyard.packaging.adhoc import bundle_from_files, default_model_name

            assert model_path is not None
            bundle_path = bundle_from_files(
                entry_script,
                model_path,
                model_name=model_name or default_model_name(model_path),
                model_version=model_version,
                dest=tmp,
                input_sample=input_sample,
            )
            manifest = json.loads((bundle_path / "manifest.json").read_text())
            name, version = manifest["model_name"], manifest["model_version"]
        else:
            config, ws = context(project, workspace, required=True)
            bundle = _bundle(ws, config, model)
            bundle_path, name, version = Path(bundle.path), bundle.model_name, bundle.model_version

        argv = ["--bundle", str(bundle_path), "--host", host, "--port", str(port)]
        if auth:
            from shipyard.serving.auth import hash_key

            key = secrets.token_urlsafe(32)
            # The server accepts keys whose hashes are in this file (mode 0600, removed on exit);
            # the key itself exists only in this output.
            keys_file = tmp / "keys.json"
            fd = os.open(keys_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({"serve": hash_key(key)}, fh)
            argv += ["--keys-file", str(keys_file)]
            console.print(f"key (send 'Authorization: Bearer <key>'; shown once): {key}", soft_wrap=True)
        console.print(f"serving {name} v{version} on http://{host}:{port} (POST /score)", soft_wrap=True)
        code = serve_main(argv)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    if code:
        raise typer.Exit(code)


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
