"""`shipyard reap [--dry-run]`: delete deployments and endpoints whose ttl has passed.

Meant for a cron entry (or the Kubernetes CronJob) as much as for a person: it prints what it
deleted and why, and says so when there was nothing to do.
"""

from __future__ import annotations

from typing import Any

import typer

from shipyard.cli.common import DryRunOpt, Output, OutputOpt, ProjectOpt, WorkspaceOpt, console, context, emit


def reap_command(
    dry_run: DryRunOpt = False,
    project: ProjectOpt = None,
    workspace: WorkspaceOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Delete expired deployments and endpoints (deployment.ttl) and stop idle local clusters."""
    from shipyard.deploy.reaper import reap

    config, ws = context(project, workspace, required=False)
    results = reap(ws, dry_run=dry_run) + _stop_idle_clusters(ws, dry_run)
    if results and not dry_run and config is not None:
        from shipyard.release.notify import notify

        what = ", ".join(f"{r['kind']} {r['id'][:12]} ({r['status']})" for r in results)
        notify(config, "reap", f"reaper: {what}", {"results": results})

    def render(rows: list[dict[str, Any]]) -> None:
        if not rows:
            console.print("nothing has expired and no cluster is idle: nothing to do")
            return
        for r in rows:
            if r["kind"] == "compute":
                console.print(f"{r['status']}: {r['target']} cluster {r['id']}: {r['reason']}", markup=False)
                continue
            ident = r["id"][:12] if r["kind"] == "deployment" else r["id"]
            actions = f" ({', '.join(r['actions'])})" if r["actions"] else ""
            console.print(
                f"{r['status']}: {r['kind']} {ident} of endpoint {r['endpoint']}: {r['reason']}{actions}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )

    emit(results, output, render)
    if any(r["status"] == "failed" for r in results):
        raise typer.Exit(1)


def _stop_idle_clusters(ws: Any, dry_run: bool) -> list[dict[str, Any]]:
    """Local clusters idle past their idle_minutes (compute/clusters.py) are stopped, not deleted;
    reported as the reaper's rows, under its lock (so two reapers never stop one twice)."""
    from shipyard.compute.clusters import stop_idle
    from shipyard.deploy.reaper import Reaped

    with ws.lock("reaper"):
        idle = stop_idle(ws, dry_run=dry_run)
    status = "would stop" if dry_run else "stopped"
    return [
        Reaped(
            "compute",
            info.name,
            "",
            info.type,
            "",
            status,
            f"idle since {info.last_used_at} (idle_minutes: {info.idle_minutes})",
        ).to_dict()
        for info in idle
    ]
