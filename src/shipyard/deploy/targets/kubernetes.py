"""The Kubernetes target: render the endpoint's manifests, and with a kubeconfig apply them and
wait for the rollout (`shipyard deploy --target kubernetes`, environments, through
deploy/facade.py). The kubeconfig is `--kubeconfig FILE`, else the `secrets:` entry that
`kubernetes.kubeconfig` names (resolved when applying, kept in memory), else KUBECONFIG or
~/.kube/config; the cluster is reached before anything is rendered or recorded, so a missing or
wrong kubeconfig leaves the endpoint serving what it served.

Rendering needs no cluster and builds nothing: the Deployment refers to the bundle's image by its
tag (`shipyard/<model>:<version>-<bundlehash12>`, under `image.registry` when one is set), which
`shipyard package MODEL --image --push` builds and pushes. The endpoint's keys are created here
like for a local deployment (shown once) and go into the Secret as hashes only. Applying records
a deployment row with target `kubernetes`, so `endpoints list` and the history show it; the
cluster, not Shipyard, runs it (and reaps it at its ttl with the rendered CronJob).
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.config.models import DeploymentConfig
from shipyard.config.targets import ttl_seconds
from shipyard.deploy.keys import ensure_keys, keys_file
from shipyard.deploy.targets.base import DeploymentSpec, TargetHandle
from shipyard.errors import ConfigError
from shipyard.packaging.bundle import Bundle
from shipyard.store import utcnow
from shipyard.store.models import DeploymentRow
from shipyard.workspace import Workspace

if TYPE_CHECKING:
    from shipyard.kube.apply import Cluster
    from shipyard.secrets import Secrets


class KubernetesTarget:
    """The cluster runs, checks and reaps these deployments: nothing is started, checked or
    stopped from here (`kube.apply.status` asks the cluster; its CronJob reaps at the ttl)."""

    name = "kubernetes"
    builds_image = False  # the Deployment pulls the image `shipyard package --image --push` made
    runs_in_cluster = True
    on_this_machine = False

    def apply(self, spec: DeploymentSpec) -> TargetHandle:
        raise ConfigError(
            f"deployment.target {self.name!r} is not run by `deploy`: "
            "use `shipyard deploy --target kubernetes --render DIR` (or with a kubeconfig, to apply)"
        )

    def status(self, handle: TargetHandle) -> str:
        return "running"  # the record is trusted: only the cluster can tell

    def logs(self, handle: TargetHandle, tail: int = 50) -> str:
        return ""

    def delete(self, handle: TargetHandle) -> None:
        """Nothing runs here to stop: the record is marked, the cluster keeps its objects."""


def image_reference(bundle: Bundle, config: DeploymentConfig) -> str:
    """The image the Deployment runs: the bundle's tag, under the registry when one is set."""
    from shipyard.images import image_tag

    tag = image_tag(bundle.model_name, bundle.model_version, bundle.content_hash)
    registry = config.image.registry
    return f"{registry.rstrip('/')}/{tag.split('/', 1)[1]}" if registry else tag


def connect(
    config: DeploymentConfig, kubeconfig: Path | None = None, secrets: Secrets | None = None
) -> Cluster:
    """The cluster to apply to: `kubeconfig` (a file), else the secrets: entry named by
    `kubernetes.kubeconfig`, else KUBECONFIG / ~/.kube/config. ConfigError names what to set."""
    from shipyard.kube.apply import Cluster, kubeconfig_value

    k = config.kubernetes
    if kubeconfig is None and k.kubeconfig is not None:
        if secrets is None:
            raise ConfigError(
                f"deployment.kubernetes.kubeconfig names the secret {k.kubeconfig}, "
                "but no secrets: section was given to resolve it"
            )
        source = f"secrets.{k.kubeconfig}"
        value = kubeconfig_value(secrets.resolve(k.kubeconfig), source)
        return Cluster(value, context=k.context, source=source)
    return Cluster(kubeconfig=kubeconfig, context=k.context)


def deploy_kubernetes(
    ws: Workspace,
    bundle: Bundle,
    config: DeploymentConfig,
    *,
    out_dir: Path | None = None,
    apply: bool = False,
    kubeconfig: Path | None = None,
    secrets: Secrets | None = None,
    slot: str = "blue",
    timeout_s: float = 300,
) -> dict[str, Any]:
    """Render (into `out_dir`, default under the workspace) and, with `apply`, apply and wait
    (the kubeconfig: see `connect`). Returns what was done; `new_keys` only when this call created
    the endpoint's keys."""
    from shipyard.kube.render import load_manifests, render

    cluster = connect(config, kubeconfig, secrets) if apply else None
    auth = config.serving.auth is not False  # on by default for deployments
    created = ensure_keys(ws, config.name) if auth else None
    hashes = json.loads(keys_file(ws, config.name).read_text()) if auth else {}
    now = utcnow()
    expires = now + timedelta(seconds=ttl_seconds(config.ttl)) if config.ttl else None
    out_dir = out_dir or ws.subdir("kubernetes", config.name)
    image = image_reference(bundle, config)
    files = render(
        config.name,
        slot,
        bundle.model_name,
        bundle.model_version,
        image,
        config,
        out_dir,
        keys=hashes,
        expires_at=expires,
        # An HTTPRoute (Gateway API) only when there is a Gateway to attach it to.
        traffic={slot: 100} if config.kubernetes.gateway else None,
    )
    result: dict[str, Any] = {
        "endpoint": config.name,
        "slot": slot,
        "model": f"{bundle.model_name}:{bundle.model_version}",
        "image": image,
        "namespace": config.kubernetes.namespace,
        "rendered": str(out_dir),
        "files": [p.name for p in files],
        "applied": False,
        "expires_at": expires.isoformat(timespec="seconds") if expires else None,
    }
    if cluster is not None:
        from shipyard.kube.apply import apply as apply_objects

        statuses = apply_objects(load_manifests(out_dir), cluster, wait=True, timeout_s=timeout_s)
        result.update(applied=True, rollout=[s.summary() for s in statuses])
        _record(ws, bundle, config, slot, expires)
    if created:
        result["new_keys"] = created
    return result


def _record(ws: Workspace, bundle: Bundle, config: DeploymentConfig, slot: str, expires: Any) -> None:
    now = utcnow()
    with ws.store.session() as s:
        for row in s.query(DeploymentRow).filter(
            DeploymentRow.endpoint == config.name,
            DeploymentRow.target == KubernetesTarget.name,
            DeploymentRow.slot == slot,
            DeploymentRow.state == "active",
        ):
            row.state, row.updated_at = "replaced", now
        s.add(
            DeploymentRow(
                id=uuid.uuid4().hex,
                endpoint=config.name,
                target=KubernetesTarget.name,
                model_name=bundle.model_name,
                model_version=bundle.model_version,
                bundle_id=bundle.id,
                state="active",
                smoke_detail={},
                created_at=now,
                updated_at=now,
                slot=slot,
                expires_at=expires,
                message=f"applied to namespace {config.kubernetes.namespace}",
            )
        )
