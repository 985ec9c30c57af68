"""Files that create a real Ray cluster, for when a laptop is outgrown (the seeds' cluster scripts).

- `launcher`: a Ray cluster launcher YAML for machines you already have (provider `local`: a
  head IP and worker IPs reached over SSH) — `ray up cluster.yaml` starts it, `ray down` stops it.
  Checked against the schema Ray ships (ray/autoscaler/ray-schema.json) before it is written.
- `kuberay`: a KubeRay `RayCluster` (ray.io/v1) with in-tree autoscaling between min and max
  workers and the idle timeout, for a Kubernetes cluster running the KubeRay operator.

Either way the cluster's dashboard address then goes into shipyard.yaml (`compute: NAME: {type:
ray, address: http://HEAD:8265}`). No secret is written: the launcher names the SSH key by its
path, as Ray expects, and never its content.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from shipyard.errors import UsageError
from shipyard.names import check_name, safe_join, shown

PROVIDERS = ("launcher", "kuberay")
DEFAULT_IMAGE = "rayproject/ray:2.60.0-py311"


def launcher_config(
    name: str,
    head_ip: str,
    worker_ips: list[str],
    ssh_user: str,
    ssh_key_path: str | None,
    *,
    max_workers: int | None = None,
    idle_minutes: int = 60,
    setup_commands: list[str] | None = None,
) -> dict[str, Any]:
    if not head_ip:
        raise UsageError("--provider launcher needs --head-ip (the machine that becomes the head node)")
    workers = max_workers if max_workers is not None else len(worker_ips)
    auth: dict[str, Any] = {"ssh_user": ssh_user}
    if ssh_key_path:
        auth["ssh_private_key"] = ssh_key_path
    return {
        "cluster_name": name,
        "provider": {"type": "local", "head_ip": head_ip, "worker_ips": list(worker_ips)},
        "auth": auth,
        "max_workers": workers,
        "idle_timeout_minutes": idle_minutes,
        "upscaling_speed": 1.0,
        "setup_commands": setup_commands or ["pip install -q 'ray[default]==2.60.0' 'shipyard[ray]'"],
        "head_start_ray_commands": [
            "ray stop",
            "ray start --head --port=6379 --dashboard-host=0.0.0.0"
            " --autoscaling-config=~/ray_bootstrap_config.yaml",
        ],
        "worker_start_ray_commands": ["ray stop", "ray start --address=$RAY_HEAD_IP:6379"],
    }


def kuberay_manifest(
    name: str,
    *,
    image: str = DEFAULT_IMAGE,
    namespace: str = "default",
    num_cpus: int = 2,
    memory_gb: float = 4,
    min_workers: int = 0,
    max_workers: int = 4,
    idle_minutes: int = 60,
) -> dict[str, Any]:
    if min_workers > max_workers:
        raise UsageError(f"--min-workers {min_workers} is more than --max-workers {max_workers}")
    resources_ = {"cpu": str(num_cpus), "memory": f"{memory_gb:g}Gi"}

    def pod(role: str) -> dict[str, Any]:
        return {
            "spec": {
                "containers": [
                    {
                        "name": f"ray-{role}",
                        "image": image,
                        "resources": {"requests": resources_, "limits": resources_},
                        **(
                            {
                                "ports": [
                                    {"containerPort": 6379, "name": "gcs"},
                                    {"containerPort": 8265, "name": "dashboard"},
                                    {"containerPort": 10001, "name": "client"},
                                ]
                            }
                            if role == "head"
                            else {}
                        ),
                    }
                ]
            }
        }

    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "shipyard"},
        },
        "spec": {
            "rayVersion": "2.60.0",
            "enableInTreeAutoscaling": True,
            "autoscalerOptions": {"idleTimeoutSeconds": idle_minutes * 60, "upscalingMode": "Default"},
            "headGroupSpec": {
                "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
                "template": pod("head"),
            },
            "workerGroupSpecs": [
                {
                    "groupName": "workers",
                    "replicas": min_workers,
                    "minReplicas": min_workers,
                    "maxReplicas": max_workers,
                    "rayStartParams": {},
                    "template": pod("worker"),
                }
            ],
        },
    }


def validate_launcher(config: dict[str, Any]) -> None:
    """Check against Ray's own cluster-config schema (ships with the ray package)."""
    try:
        import jsonschema

        schema_text = resources.files("ray.autoscaler").joinpath("ray-schema.json").read_text()
    except (ImportError, ModuleNotFoundError, FileNotFoundError):
        return  # without ray installed there is no schema to check against; ray up checks it
    try:
        jsonschema.validate(config, json.loads(schema_text))
    except jsonschema.ValidationError as exc:
        raise UsageError(f"the cluster launcher config is not valid for Ray: {exc.message}") from None


def render(provider: str, directory: Path, name: str, **options: Any) -> Path:
    """Write the cluster definition into `directory` (only there: the name is checked and the
    file's path must stay inside it); returns the file written."""
    check_name("compute name", name)
    if provider == "launcher":
        config = launcher_config(name, **options)
        validate_launcher(config)
        filename = f"{name}-cluster.yaml"
    elif provider == "kuberay":
        config = kuberay_manifest(name, **options)
        filename = f"{name}-raycluster.yaml"
    else:
        raise UsageError(f"--provider {shown(provider)}: use one of {', '.join(PROVIDERS)}")
    directory.mkdir(parents=True, exist_ok=True)
    path = safe_join(directory, filename)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
