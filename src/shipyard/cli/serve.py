"""`shipyard serve`: a registered version, or an Azure ML project's files as they are, in the
foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.common import Output, OutputOpt, ProjectOpt, WorkspaceOpt, console, context, emit
from shipyard.cli.endpoints import ModelArg, _bundle
from shipyard.cli.name_args import name_check


def _serve_with(python: Path, argv: list[str]) -> int:
    """The server in the foreground with another interpreter (the bundle's own environment); it
    ends with this command (Ctrl-C reaches both, a SIGTERM here is passed on)."""
    import os
    import subprocess

    from shipyard.venvs.cache import activated

    proc = subprocess.Popen([str(python), "-m", "shipyard.serving", *argv], env=activated(os.environ, python))
    try:
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _render_serving(info: dict) -> None:
    if info["key"]:
        console.print(
            f"key (send 'Authorization: Bearer <key>'; shown once): {info['key']}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    console.print(
        f"serving {info['model_name']} v{info['model_version']} on {info['url']} "
        "(POST /score, /v2/…, /invocations for MLflow models; Ctrl-C stops)",
        soft_wrap=True,
    )
    if info["environment"] != "shipyard":
        where = f"{info['environment']} ({info['python']})"
        console.print(f"in the bundle's own environment {where}", soft_wrap=True)


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
        str | None,
        typer.Option(
            "--model-name",
            help="Model name (default: the --model file/folder stem).",
            callback=name_check("model name"),
        ),
    ] = None,
    model_version: Annotated[
        str, typer.Option("--model-version", help="Model version.", callback=name_check("model version"))
    ] = "1",
    input_sample: Annotated[
        Path | None,
        typer.Option("--input-sample", help="JSON sample request (swagger example, input checks)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 5001,
    auth: Annotated[
        bool, typer.Option("--auth/--no-auth", help="Require a key (a new one is printed once).")
    ] = False,
    workers: Annotated[int | None, typer.Option("--workers", help="Server processes.")] = None,
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
    import sys
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
    config = None
    key = None
    python = None
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
            # Shipyard's own Python when it has what the bundle needs, else the bundle's environment.
            from shipyard.cli.common import err_console
            from shipyard.venvs.serving import serving_python

            packages = config.deployment.packages if config and config.deployment else None
            with err_console.status("checking the bundle's requirements…") as status:
                python = serving_python(ws, bundle_path, packages, progress=status.update)

        # The project's serving settings (limits, batching, capture) apply here too; auth is the flag's.
        settings = config.deployment.serving.model_dump() if config and config.deployment else {}
        settings["auth"] = auth
        if workers:
            settings["workers"] = workers
        (tmp / "settings.json").write_text(json.dumps(settings))
        argv = [
            "--bundle",
            str(bundle_path),
            "--host",
            host,
            "--port",
            str(port),
            "--settings",
            str(tmp / "settings.json"),
        ]
        if auth:
            from shipyard.serving.server.auth import hash_key

            key = secrets.token_urlsafe(32)
            # The server accepts keys whose hashes are in this file (mode 0600, removed on exit);
            # the key itself exists only in this output.
            keys_file = tmp / "keys.json"
            fd = os.open(keys_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({"serve": hash_key(key)}, fh)
            argv += ["--keys-file", str(keys_file)]
        info = {
            "model_name": name,
            "model_version": version,
            "url": f"http://{host}:{port}",
            "bundle": str(bundle_path),
            "auth": auth,
            "key": key,
            "python": str(python.python) if python else sys.executable,
            "environment": python.environment if python else "shipyard",
        }
        emit(info, output, _render_serving)
        code = serve_main(argv) if python is None or python.own else _serve_with(python.python, argv)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    if code:
        raise typer.Exit(code)
