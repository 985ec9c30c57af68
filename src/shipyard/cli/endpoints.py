"""`shipyard package`, `shipyard deploy`, `shipyard rollback`, `shipyard endpoints list|traffic|delete`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
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
from shipyard.cli.name_args import EndpointArg, model_ref_check, name_check

app = typer.Typer(help="Endpoints: where deployed models answer.", no_args_is_help=True)
app.add_typer(keys.app, name="keys")

ModelArg = Annotated[
    str | None,
    typer.Argument(
        help="NAME, NAME:VERSION or NAME@ALIAS (default: the project's model @production).",
        callback=model_ref_check,
    ),
]


def _model_ref(config, model: str | None) -> str:
    return model or f"{config.registry.model_name}@production"


def _bundle(ws, config, model: str | None):
    """The bundle of the model the command names (default: the project's model @production)."""
    from shipyard.deploy.facade import resolve_bundle

    return resolve_bundle(ws, config, _model_ref(config, model))


def package_command(
    model: ModelArg = None,
    image: Annotated[bool, typer.Option("--image", help="Also build the scoring image (OCI).")] = False,
    push: Annotated[
        bool, typer.Option("--push", help="Push the image to deployment.image.registry.")
    ] = False,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Build the service bundle of a model version (model files, score.py, requirements, manifest),
    and with --image its scoring image."""
    config, ws = context(project, workspace, required=True)
    bundle = _bundle(ws, config, model)
    result = bundle.to_dict()
    if image or push:
        from shipyard.images import build_image

        assert config is not None and config.deployment is not None
        with err_console.status("building the image…") as status:
            info = build_image(
                ws,
                bundle,
                config.deployment.image,
                push=push,
                progress=status.update,
                packages=config.deployment.packages,
            )
        result["image"] = info.to_dict()

    def render(b: dict) -> None:
        console.print(f"bundle {b['id'][:12]} for {b['model_name']} v{b['model_version']}: {b['path']}")
        if "image" in b:
            i = b["image"]
            size = f"{i['size_bytes'] / 1e6:.0f} MB" if i.get("size_bytes") else "size unknown"
            console.print(f"image {i['tag']} ({size}, {i['builder']}, {i['build_seconds']} s)")
            if i.get("pushed_to"):
                console.print(f"pushed to {i['pushed_to']}")

    emit(result, output, render)


class Strategy(StrEnum):
    # The member is replace_ (its value, what the CLI takes and shows, is "replace"): a member
    # named replace would shadow str.replace on every member.
    replace_ = "replace"
    # One replica locally: a rolling update is surge one (the new server beside the old), then
    # remove the old, which is what replace does. On Kubernetes it is the Deployment's own.
    rolling = "rolling"
    blue_green = "blue-green"


def _print_keys(keys: dict | None) -> None:
    for slot, key in (keys or {}).items():
        console.print(f"  {slot} key (shown once): {key}", markup=False, highlight=False, soft_wrap=True)


def _steps(text: str) -> list[int]:
    from shipyard.errors import UsageError

    try:
        return [int(p) for p in text.split(",")]
    except ValueError:
        raise UsageError(
            f"--steps {text!r}: give rising percents separated by commas, e.g. 10,50,100"
        ) from None


def deploy_command(
    model: ModelArg = None,
    strategy: Annotated[
        Strategy,
        typer.Option(
            help="replace (= rolling with one replica): new beside old, smoke test, switch, stop old; "
            "blue-green: shift traffic in steps, roll back on errors."
        ),
    ] = Strategy.replace_,
    slot: Annotated[
        str | None,
        typer.Option(
            help="Slot of the new deployment (default: blue/green in turn).", callback=name_check("slot name")
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="local, container, remote-container or kubernetes (default: deployment.target in "
            "shipyard.yaml)."
        ),
    ] = None,
    render_dir: Annotated[
        Path | None,
        typer.Option("--render", help="kubernetes: write the manifests and Helm chart here, apply nothing."),
    ] = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            help="kubernetes: kubeconfig file to apply with (default: the secrets: entry that "
            "deployment.kubernetes.kubeconfig names, else KUBECONFIG or ~/.kube/config)."
        ),
    ] = None,
    steps: Annotated[str, typer.Option(help="blue-green: green's traffic share per step.")] = "10,50,100",
    window: Annotated[float, typer.Option(help="blue-green: seconds to watch each step.")] = 5.0,
    max_error_rate: Annotated[float, typer.Option(help="blue-green: highest 5xx share allowed.")] = 0.01,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Deploy a model version to the project's endpoint: start, health-check, smoke-test, switch over."""
    from shipyard.config.overlay import root_project
    from shipyard.deploy.facade import deploy_bundle
    from shipyard.deploy.rollout import TrafficSteps
    from shipyard.deploy.targets import target_class
    from shipyard.errors import DeploymentError, UsageError

    config, ws = context(project, workspace, required=True)
    assert config is not None
    config = root_project(config)  # with environments: the first one's endpoint, `<project>-dev`
    assert config.deployment is not None
    d = config.deployment if target is None else _with_target(config.deployment, target)
    bundle = _bundle(ws, config, model)
    in_cluster = target_class(d.target).runs_in_cluster
    if render_dir is not None and not in_cluster:
        raise UsageError("--render writes Kubernetes manifests: use it with --target kubernetes")
    rollout = None
    if strategy is Strategy.blue_green and not in_cluster:  # a cluster rolls out by itself
        rollout = TrafficSteps(_steps(steps), window, max_error_rate)
    with err_console.status(f"deploying to {d.name}…") as status:
        result = deploy_bundle(
            ws,
            config,
            bundle,
            deployment=d,
            slot=slot,
            steps=rollout,
            render_to=render_dir,
            kubeconfig=kubeconfig,
            progress=status.update,
        )
    if result.applied is not None:
        emit(result.applied, output, _show_applied)
    elif result.rollout is not None:
        emit(result.rollout.to_dict(), output, _show_rollout)
        if not result.rollout.succeeded:
            raise DeploymentError(f"blue/green rollout on {d.name} failed: {result.rollout.reason}")
        if output is Output.text:
            _print_keys(result.new_keys)
    else:
        assert result.deployment is not None
        shown = result.deployment.to_dict() | ({"new_keys": result.new_keys} if result.new_keys else {})
        emit(shown, output, _show_deployment)


def _show_deployment(x: dict) -> None:
    where = x["endpoint_url"] or x["url"]
    console.print(
        f"[green]✓[/green] {x['endpoint']}: {x['model_name']} v{x['model_version']} serving at {where}"
    )
    settings = x.get("target_settings") or {}
    if settings.get("environment") not in (None, "shipyard"):
        console.print(f"  in the bundle's own environment {settings['environment']} ({settings['python']})")
    _print_keys(x.get("new_keys"))


def _show_rollout(x: dict) -> None:
    mark = "[green]✓[/green]" if x["succeeded"] else "[red]✗[/red]"
    console.print(f"{mark} {x['endpoint']}: {x['reason']} ({x['url']})")


def _show_applied(x: dict) -> None:
    console.print(f"[green]✓[/green] {x['endpoint']} ({x['model']}, image {x['image']})")
    console.print(f"  manifests: {x['rendered']} ({len(x['files'])} files + chart/)")
    for line in x.get("rollout", []):
        console.print(f"  {line}")
    if not x["applied"]:
        console.print("  build and push the image with `shipyard package --image --push`, then apply")
    _print_keys(x.get("new_keys"))


def _with_target(d, target: str):
    from shipyard.deploy.targets import TARGETS, target_names
    from shipyard.errors import UsageError
    from shipyard.names import shown

    if target not in TARGETS:
        raise UsageError(f"--target {shown(target)}: use {target_names()}")
    return d.model_copy(update={"target": target})


def rollback_command(
    endpoint: Annotated[
        str,
        typer.Argument(
            help="Environment (dev, qa, prod, ...) or endpoint to roll back.",
            callback=name_check("endpoint name"),
        ),
    ],
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            help="Only if it serves this model version now (a release's rollback job: a deployment "
            "that never went live rolls nothing back).",
            callback=name_check("version number"),
        ),
    ] = None,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Return an environment's or endpoint's traffic to the deployment it served before (restarted
    from its bundle if stopped); an environment's rollback goes into its history."""
    from shipyard.release.rollback import rollback_endpoint

    config, ws = context(project, workspace)
    with err_console.status(f"rolling {endpoint} back…"):
        result = rollback_endpoint(ws, config, endpoint, version or None)

    def render(x: dict) -> None:
        if not x["rolled_back"]:
            console.print(x["note"], markup=False)
            return
        console.print(
            f"[green]✓[/green] {x['endpoint']}: back to {x['model']} "
            f"({x['deployment_id'][:8]}, slot {x['slot']}) at {x['url']}"
        )
        alias = x.get("production")
        if alias and alias["moved"]:
            console.print(f"  {alias['model']}@production: v{alias['from']} → v{alias['to']}", markup=False)

    emit(result, output, render)


app.command("rollback")(rollback_command)


@app.command("traffic")
def traffic_cmd(
    name: EndpointArg,
    weights: Annotated[list[str] | None, typer.Argument(help="SLOT=PERCENT ..., summing to 100.")] = None,
    mirror: Annotated[
        list[str] | None,
        typer.Option("--mirror", help="SLOT=PERCENT of requests copied there (answers ignored)."),
    ] = None,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Show an endpoint's traffic, or set it: `shipyard endpoints traffic dev blue=90 green=10`."""
    from shipyard.deploy.traffic import get_endpoint, parse_assignments, set_traffic
    from shipyard.errors import NotFoundError

    _, ws = context(project, workspace)
    if weights:
        mirrored = parse_assignments(mirror, "mirror") if mirror is not None else None
        info = set_traffic(
            ws, name, parse_assignments(weights), mirrored, reason="shipyard endpoints traffic"
        )
    else:
        found = get_endpoint(ws, name)
        if found is None:
            raise NotFoundError(f"no endpoint {name!r} with a router: deploy to it first")
        info = found
    emit(
        info.to_dict(),
        output,
        lambda x: console.print(
            f"{x['name']} {x['url']}: "
            + ", ".join(f"{s}={p}%" for s, p in x["traffic"].items())
            + ("; mirror " + ", ".join(f"{s}={p}%" for s, p in x["mirror"].items()) if x["mirror"] else "")
        ),
    )


@app.command("list")
def list_cmd(
    project: ProjectOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.text
) -> None:
    """Endpoints with the deployment serving each (and the host it runs on, when not this one)."""
    from shipyard.deploy.endpoints import list_endpoints

    _, ws = context(project, workspace)
    rows = list_endpoints(ws)

    def shown(r: dict) -> dict:
        host = r["host"] if r.get("owned_here") is False else ("here" if r.get("host") else "")
        return r | {"traffic": " ".join(f"{s}={p}%" for s, p in r["traffic"].items()), "host": host}

    emit(
        rows,
        output,
        lambda d: table(
            [shown(r) for r in d],
            ["endpoint", "state", "url", "model", "traffic", "host", "environment", "deployment_id"],
            empty="no endpoints",
        ),
    )


@app.command("delete")
def delete_cmd(
    name: EndpointArg,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
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


capture_app = typer.Typer(
    help="Data capture files: upload them to a shared workspace's artifact store, list them.",
    no_args_is_help=True,
)
app.add_typer(capture_app, name="capture")

CaptureEndpointArg = Annotated[
    str | None,
    typer.Argument(
        help="Endpoint name (default: every endpoint).",
        show_default=False,
        callback=name_check("endpoint name"),
    ),
]


@capture_app.command("sync")
def capture_sync_cmd(
    endpoint: CaptureEndpointArg = None,
    include_open: Annotated[
        bool,
        typer.Option(
            "--include-open",
            help="Also files that may still be written (only when their servers are stopped; a file "
            "that changes afterwards is uploaded again).",
        ),
    ] = False,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Upload this machine's complete capture files to the artifact store (s3:// workspaces;
    capture/<endpoint>/<host>/<file>). Runs by itself after `endpoints delete`."""
    from shipyard.deploy.capture_sync import sync_capture

    _, ws = context(project, workspace)
    with err_console.status("uploading capture files…"):
        done = sync_capture(ws, endpoint, include_open=include_open)

    def render(d: dict) -> None:
        if "note" in d:
            console.print(d["note"], markup=False)
            return
        console.print(
            f"uploaded {d['uploaded']} capture file(s) ({d['bytes']} bytes) to {d['store']}/…/{d['host']}; "
            f"{d['already']} already uploaded, {d['skipped_open']} still being written (skipped)",
            markup=False,
        )

    emit(done, output, render)


@capture_app.command("list")
def capture_list_cmd(
    endpoint: CaptureEndpointArg = None,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Capture files in the artifact store (every host's), with their host and size; on a file://
    workspace, the files in this machine's capture folders."""
    from shipyard.deploy.capture_sync import list_capture

    _, ws = context(project, workspace)
    rows = list_capture(ws, endpoint)
    emit(
        rows,
        output,
        lambda d: table(
            [r | {"complete": {True: "yes", False: "no"}.get(r["complete"])} for r in d],
            ["endpoint", "host", "file", "size", "uploaded_at", "complete"],
            empty="no capture files",
        ),
    )
