"""`shipyard compute list|create|start|status|stop|delete`: compute targets and their clusters.

A local Ray cluster is run by Shipyard (create starts it, stop/start/delete manage it, `shipyard
reap` stops it when idle); ssh hosts, Spark masters and existing Ray clusters are defined in
shipyard.yaml and only checked (`status`). `create --render DIR` writes the files that create a
real cluster instead (Ray cluster launcher YAML or a KubeRay RayCluster).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shipyard.cli.common import Output, OutputOpt, ProjectOpt, WorkspaceOpt, console, context, emit, table
from shipyard.cli.name_args import name_check

app = typer.Typer(
    help="Compute targets: local Ray clusters, ssh hosts, Spark, existing Ray clusters.", no_args_is_help=True
)
NameArg = Annotated[
    str,
    typer.Argument(
        help="Compute name (shipyard.yaml compute: section or created here).",
        callback=name_check("compute name"),
    ),
]


def _say(info: Any, output: Output) -> None:
    emit(info.to_dict(), output, lambda d: console.print(_line(d), markup=False, highlight=False))


def _line(d: dict[str, Any]) -> str:
    where = f" at {d['address']}" if d.get("address") else ""
    message = f" — {d['message']}" if d.get("message") else ""
    return f"{d['name']} ({d['type']}): {d['state']}{where}{message}"


@app.command("list")
def list_cmd(
    project: ProjectOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.text
) -> None:
    """Clusters recorded in the workspace and the targets of shipyard.yaml's compute: section."""
    from shipyard.compute.clusters import list_clusters

    config, ws = context(project, workspace, required=False)
    rows = [i.to_dict() for i in list_clusters(ws, config)]
    columns = ["name", "type", "state", "address", "idle_minutes", "last_used_at"]
    empty = "no compute targets: shipyard compute create NAME --type ray"
    emit(rows, output, lambda d: table(d, columns, empty=empty))


@app.command("create")
def create_cmd(
    name: NameArg,
    type_: Annotated[str | None, typer.Option("--type", help="ray (a local cluster Shipyard runs).")] = None,
    num_cpus: Annotated[
        int | None, typer.Option("--num-cpus", help="CPUs of the cluster (default: all).")
    ] = None,
    idle_minutes: Annotated[
        int | None, typer.Option("--idle-minutes", help="Stop after this long idle (default 60; 0: never).")
    ] = None,
    render_dir: Annotated[
        Path | None, typer.Option("--render", help="Write the files for a real cluster here instead.")
    ] = None,
    provider: Annotated[
        str, typer.Option("--provider", help="With --render: launcher or kuberay.")
    ] = "launcher",
    head_ip: Annotated[str | None, typer.Option("--head-ip", help="launcher: the head machine.")] = None,
    worker_ip: Annotated[
        list[str] | None, typer.Option("--worker-ip", help="launcher: a worker machine.")
    ] = None,
    ssh_user: Annotated[str, typer.Option("--ssh-user", help="launcher: SSH user.")] = "ubuntu",
    ssh_key_path: Annotated[
        str | None, typer.Option("--ssh-key-path", help="launcher: private key file path (not its content).")
    ] = None,
    min_workers: Annotated[int, typer.Option("--min-workers", help="kuberay: minimum workers.")] = 0,
    max_workers: Annotated[int | None, typer.Option("--max-workers", help="Maximum workers.")] = None,
    image: Annotated[
        str | None,
        typer.Option("--image", help="kuberay: Ray image.", callback=name_check("image reference")),
    ] = None,
    namespace: Annotated[
        str,
        typer.Option("--namespace", help="kuberay: namespace.", callback=name_check("Kubernetes namespace")),
    ] = "default",
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Create-or-get a compute target and start it (a local Ray cluster), or render a real one."""
    if render_dir is not None:
        _render(
            name,
            provider,
            render_dir,
            head_ip,
            worker_ip or [],
            ssh_user,
            ssh_key_path,
            min_workers,
            max_workers,
            image,
            namespace,
            num_cpus,
            idle_minutes,
            output,
        )
        return
    from shipyard.compute import clusters

    config, ws = context(project, workspace, required=False)
    with console.status(f"starting {name}…"):
        info = clusters.create(ws, name, config, type_, num_cpus=num_cpus, idle_minutes=idle_minutes)
    _say(info, output)


def _render(
    name,
    provider,
    directory,
    head_ip,
    worker_ips,
    ssh_user,
    ssh_key_path,
    min_workers,
    max_workers,
    image,
    namespace,
    num_cpus,
    idle_minutes,
    output,
) -> None:
    from shipyard.compute.ray.cluster_config import DEFAULT_IMAGE, render

    idle = 60 if idle_minutes is None else idle_minutes
    if provider == "launcher":
        options: dict[str, Any] = {
            "head_ip": head_ip or "",
            "worker_ips": worker_ips,
            "ssh_user": ssh_user,
            "ssh_key_path": ssh_key_path,
            "max_workers": max_workers,
            "idle_minutes": idle,
        }
    else:
        options = {
            "image": image or DEFAULT_IMAGE,
            "namespace": namespace,
            "num_cpus": num_cpus or 2,
            "min_workers": min_workers,
            "max_workers": 4 if max_workers is None else max_workers,
            "idle_minutes": idle,
        }
    path = render(provider, directory, name, **options)
    follow = "ray up " + str(path) if provider == "launcher" else "kubectl apply -f " + str(path)
    emit(
        {"name": name, "provider": provider, "file": str(path), "next": follow},
        output,
        lambda d: console.print(f"wrote {d['file']}; start it with: {d['next']}", markup=False),
    )


@app.command("start")
def start_cmd(
    name: NameArg, project: ProjectOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.text
) -> None:
    """Start a stopped cluster (a running one is left as it is)."""
    from shipyard.compute import clusters

    config, ws = context(project, workspace, required=False)
    with console.status(f"starting {name}…"):
        _say(clusters.start(ws, name, config), output)


@app.command("status")
def status_cmd(
    name: NameArg, project: ProjectOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.text
) -> None:
    """The cluster's state, checked against what runs (ssh hosts and Ray addresses are probed)."""
    from shipyard.compute import clusters

    config, ws = context(project, workspace, required=False)
    _say(clusters.status(ws, name, config), output)


@app.command("stop")
def stop_cmd(
    name: NameArg, project: ProjectOpt = None, workspace: WorkspaceOpt = None, output: OutputOpt = Output.text
) -> None:
    """Stop a running cluster (a stopped one: nothing to do)."""
    from shipyard.compute import clusters

    config, ws = context(project, workspace, required=False)
    _say(clusters.stop(ws, name, config), output)


@app.command("delete")
def delete_cmd(
    name: NameArg,
    permanent: Annotated[bool, typer.Option("--permanent", help="Also forget its recorded state.")] = False,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Stop the cluster and mark it deleted (--permanent: remove its record too)."""
    from shipyard.compute import clusters

    config, ws = context(project, workspace, required=False)
    _say(clusters.delete(ws, name, config, permanent), output)
