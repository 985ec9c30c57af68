"""Where a deployment runs and what it gets: image, resources, replicas, Kubernetes details, TTL.

Field names follow Azure ML's deployment configs where they have one (`cpu_cores`, `memory_gb`,
`autoscale_min_replicas`, ...): config/azureml.py maps those files onto these models.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from shipyard.config.base import Strict
from shipyard.secrets.refs import SecretReference

# The official kubectl image of the Kubernetes project (SIG Release; distroless, updated with every
# patch release). kubectl talks to API servers within one minor version of its own.
REAPER_IMAGE = "registry.k8s.io/kubectl:v1.36.4"
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TTL = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def ttl_seconds(ttl: str) -> int:
    """'24h' → 86400."""
    match = _TTL.match(ttl)
    if match is None:
        raise ValueError(f"ttl {ttl!r}: use a number and a unit, e.g. 30m, 24h or 7d")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


class ImageConfig(Strict):
    """The OCI image `shipyard package --image` builds from a bundle."""

    base: str = Field("python:3.11-slim", description="Base image with python3 (3.10+) on PATH.")
    builder: Literal["auto", "podman", "docker", "buildah"] = Field(
        "auto", description="Image builder; auto picks the first installed of podman, docker, buildah."
    )
    registry: str | None = Field(None, description="Push target, e.g. registry.example.com/team.")
    registry_username: SecretReference | None = Field(None, description="Reference to the user name.")
    registry_password: SecretReference | None = Field(None, description="Reference to the password/token.")


class ResourcesConfig(Strict):
    """Per replica (Azure ML: cpu_cores / memory_gb)."""

    cpu_cores: float = Field(1.0, gt=0, le=256, alias="cpu", description="CPU request (cores).")
    memory_gb: float = Field(1.0, gt=0, le=4096, alias="memory", description="Memory request (GiB).")
    cpu_limit: float | None = Field(None, gt=0, description="CPU limit; default: the request.")
    memory_limit_gb: float | None = Field(None, gt=0, description="Memory limit; default: the request.")


class AutoscaleConfig(Strict):
    """Replicas on Kubernetes (Azure ML AKS: autoscale_*); without `enabled`, `replicas` fixed."""

    enabled: bool = False
    replicas: int = Field(1, ge=1, le=1000, description="Replicas when autoscaling is off.")
    min_replicas: int = Field(1, ge=1, le=1000)
    max_replicas: int = Field(3, ge=1, le=1000)
    target_cpu_percent: int = Field(70, ge=1, le=100, description="HPA target CPU utilization.")

    @model_validator(mode="after")
    def _min_below_max(self) -> AutoscaleConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})"
            )
        return self


class KubernetesConfig(Strict):
    namespace: str = Field("default", pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    context: str | None = Field(None, description="kubeconfig context; default: the current one.")
    gateway: str | None = Field(None, description="Gateway (API) the endpoint's HTTPRoute attaches to.")
    image_pull_secret: str | None = Field(None, description="Name of an existing pull secret.")
    kubeconfig: str | None = Field(
        None,
        description="Name of the secrets: entry whose value is the kubeconfig to apply with (its YAML, "
        "or the path of a file holding it); default: KUBECONFIG or ~/.kube/config (docs/kubernetes.md).",
    )
    reaper_image: str = Field(
        REAPER_IMAGE,
        pattern=r"^\S+$",
        description="Image of the TTL reaper CronJob; it runs `kubectl delete` (docs/kubernetes.md).",
    )

    @field_validator("kubeconfig")
    @classmethod
    def _kubeconfig_names_a_secret(cls, v: str | None) -> str | None:
        if v is not None and not _SECRET_NAME.match(v):
            # The type the loader never quotes: a kubeconfig pasted here must not be echoed.
            raise PydanticCustomError(
                "secret_reference",
                "name an entry of the secrets: section (e.g. KUBECONFIG) and give the reference "
                "(env:, file:, keyring:) there; the value is not shown",
            )
        return v


_HOST = re.compile(r"^[A-Za-z0-9_.:\[\]-]+$")


class RemoteHostConfig(Strict):
    """The host of the remote-container target: a VM running podman or docker, reached over SSH
    (docs/remote-container.md). `key` is a secret reference, never the key itself."""

    host: str = Field(..., description="Host name or address of the VM, reached over SSH.")
    port: int = Field(22, ge=1, le=65535, description="SSH port.")
    user: str | None = Field(None, description="SSH user; default: ssh's own (your user or ~/.ssh/config).")
    key: SecretReference | None = Field(
        None, description="Reference to the private key (file:, env:, keyring:); default: agent and ~/.ssh."
    )
    known_hosts: str | None = Field(
        None, description="known_hosts file holding the host's key; default: ~/.ssh/known_hosts."
    )
    runtime: Literal["podman", "docker"] = Field("podman", description="Container runtime on the host.")
    bind: str = Field("0.0.0.0", description="Interface of the host the published port listens on.")
    address: str | None = Field(
        None, description="Host name clients use in the endpoint URL; default: `host`."
    )

    @field_validator("host", "bind", "address")
    @classmethod
    def _host_name(cls, v: str | None) -> str | None:
        if v is not None and (not _HOST.match(v) or v.startswith("-")):
            raise ValueError(f"{v!r} is not a host name or address")
        return v

    @field_validator("user")
    @classmethod
    def _user_name(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", v):
            raise ValueError(f"{v!r} is not a user name")
        return v


class TargetConfig(Strict):
    """The deployment target and what it gives each replica."""

    target: Literal["local", "container", "remote-container", "kubernetes"] = Field(
        "local", description="Where it runs."
    )
    image: ImageConfig = Field(default_factory=ImageConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    autoscale: AutoscaleConfig = Field(default_factory=AutoscaleConfig)
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)
    remote: RemoteHostConfig | None = Field(
        None, description="The host of the remote-container target (host, port, user, key, ...)."
    )
    restart: Literal["no", "on-failure", "always"] = Field(
        "on-failure", description="Container restart policy (container target)."
    )
    ttl: str | None = Field(None, description="Delete the deployment this long after it starts (e.g. 24h).")

    @model_validator(mode="after")
    def _remote_has_a_host(self) -> TargetConfig:
        if self.target == "remote-container" and self.remote is None:
            raise ValueError(
                "target remote-container needs a `remote:` section with at least `host:` "
                "(docs/remote-container.md)"
            )
        return self

    @field_validator("ttl")
    @classmethod
    def _ttl_parses(cls, v: str | None) -> str | None:
        if v is not None:
            ttl_seconds(v)
        return v
