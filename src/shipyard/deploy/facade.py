"""The one deploy path: resolve → bundle → deploy → smoke test, for every caller.

`shipyard deploy` (cli/endpoints.py), the pipeline's deploy step, environments (release/) and
`shipyard doctor`'s repair all call `deploy_bundle`; they keep only what is theirs (arguments and
printing, step caching and records, environment history and approvals). The target table
(deploy/targets/) decides how a deployment runs: one a cluster runs is rendered and applied
(targets/kubernetes.py); any other starts beside the active deployment, is smoke-tested directly
and then takes the endpoint's traffic (deploy/endpoints.py), all at once or in blue/green steps
(deploy/rollout.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.config.models import DeploymentConfig, ProjectConfig
from shipyard.deploy.endpoints import DeploymentInfo, run_smoke_test, start_deployment
from shipyard.deploy.rollout import RolloutResult, TrafficSteps, blue_green
from shipyard.deploy.targets import target_class
from shipyard.packaging.bundle import Bundle, bundle_for_deployment
from shipyard.registry.models import ModelVersionInfo, resolve
from shipyard.workspace import Workspace


@dataclass
class DeployResult:
    """What one deployment did; exactly one of `deployment`, `rollout`, `applied` is set."""

    endpoint: str
    bundle: Bundle
    # Started (and, when smoke-tested, active): local process or container.
    deployment: DeploymentInfo | None = None
    rollout: RolloutResult | None = None  # blue/green steps
    applied: dict[str, Any] | None = None  # a cluster's target: what was rendered (and applied)
    # Plain keys, only when this deployment created the endpoint's keys: shown once, never stored.
    new_keys: dict[str, str] | None = None

    @property
    def deployment_id(self) -> str | None:
        return self.deployment.id if self.deployment else None

    @property
    def url(self) -> str | None:
        """The endpoint's stable URL (its router) when it has one, else the deployment's own."""
        if self.deployment is not None:
            return self.deployment.endpoint_url or self.deployment.url
        if self.rollout is not None:
            return self.rollout.url
        return (self.applied or {}).get("url")


def resolve_bundle(ws: Workspace, project: ProjectConfig, source: str | ModelVersionInfo | Bundle) -> Bundle:
    """The bundle of `source` with the project's deployment files (from the bundle store when
    this content was bundled before)."""
    if isinstance(source, Bundle):
        return source
    model = resolve(ws, source) if isinstance(source, str) else source
    return bundle_for_deployment(ws, model, project)


def deploy_bundle(
    ws: Workspace,
    project: ProjectConfig,
    source: str | ModelVersionInfo | Bundle,
    *,
    deployment: DeploymentConfig | None = None,
    slot: str | None = None,
    smoke_test: bool = True,
    steps: TrafficSteps | None = None,
    render_to: Path | None = None,
    kubeconfig: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> DeployResult:
    """Deploy `source` (a model reference such as NAME:VERSION or NAME@ALIAS, a resolved version,
    or a bundle already built) to `deployment` (default: the project's).

    The bundle comes from the bundle store (built once per content). `smoke_test=False` only
    starts the deployment beside the active one: the caller smoke-tests and activates it later
    (the pipeline's smoke_test step). `steps` shifts traffic in blue/green steps instead of at
    once. On a target a cluster runs, the manifests are rendered (into `render_to`, applying
    nothing) or applied and the rollout awaited, with the kubeconfig file `kubeconfig` or the
    `secrets:` entry that `kubernetes.kubeconfig` names. `progress` is told each phase.
    """
    d = deployment or project.deployment
    assert d is not None
    say = progress or (lambda _message: None)
    bundle = resolve_bundle(ws, project, source)
    what = f"{bundle.model_name} v{bundle.model_version}"
    if not smoke_test:  # start only; a target a cluster runs refuses (deploy/runtime.py)
        say(f"starting {what} on endpoint {d.name}…")
        started = start_deployment(ws, bundle, d, slot, progress=progress)
        return DeployResult(d.name, bundle, deployment=started, new_keys=started.new_keys)
    if target_class(d.target).runs_in_cluster:
        from shipyard.deploy.targets.kubernetes import deploy_kubernetes

        apply = render_to is None
        say("applying to the cluster…" if apply else "rendering manifests…")
        from shipyard.secrets import Secrets

        applied = deploy_kubernetes(
            ws,
            bundle,
            d,
            out_dir=render_to,
            apply=apply,
            kubeconfig=kubeconfig,
            secrets=Secrets(project.secrets, root=project.project_dir),
            slot=slot or "blue",
        )
        return DeployResult(d.name, bundle, applied=applied, new_keys=applied.get("new_keys"))
    if steps is not None:
        say(f"blue/green rollout of {what} on {d.name}…")
        rolled = blue_green(
            ws,
            bundle,
            d,
            slot=slot,
            steps=steps.steps,
            window_s=steps.window_s,
            max_error_rate=steps.max_error_rate,
        )
        return DeployResult(d.name, bundle, rollout=rolled, new_keys=rolled.new_keys)
    say(f"starting {what} on endpoint {d.name}…")
    started = start_deployment(ws, bundle, d, slot, progress=progress)
    say("smoke test…")
    dep = run_smoke_test(ws, started.id, bundle.manifest.get("input_sample"), d.smoke_test.timeout_s)
    return DeployResult(d.name, bundle, deployment=dep, new_keys=started.new_keys)
