"""Named compute targets (the `compute:` section of shipyard.yaml).

    compute:
      gpu-vm:   {type: ssh, host: 10.0.0.5, user: azureuser, key: env:GPU_VM_KEY}
      cluster:  {type: ray, num_cpus: 2, idle_minutes: 60}          # a local cluster Shipyard runs
      shared:   {type: ray, address: http://ray-head:8265}          # an existing cluster's dashboard
      spark:    {type: spark, master: "local[*]"}

A step picks one with `train.compute: NAME`; `local` and `venv` are built in and need no entry.
Nothing secret is written here: an ssh key is a reference (file:, env:, keyring:).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from shipyard.config.base import Strict
from shipyard.names import config_name
from shipyard.secrets.refs import SecretReference

BUILT_IN = ("local", "venv")


def check_compute_name(name: str) -> str:
    """A name for a new compute target: the rule of names.py and not a built-in one (ValueError)."""
    config_name("compute name", name)
    if name in BUILT_IN:
        raise ValueError(f"compute name {name!r} is built in; pick another name")
    return name


class SshCompute(Strict):
    """A remote host reached with the system OpenSSH client."""

    type: Literal["ssh"]
    host: str = Field(..., min_length=1, description="Host name or address.")
    port: int = Field(22, ge=1, le=65535)
    user: str | None = Field(None, description="Remote user; default: ssh's own default.")
    key: SecretReference | None = Field(
        None,
        description="Private key: file:PATH (mode 0600), env:VAR or keyring:service/name; none: ssh-agent.",
    )
    known_hosts: str | None = Field(None, description="known_hosts file; default: the user's own.")
    accept_new_host_key: bool = Field(
        False, description="Trust an unknown host key on first contact (StrictHostKeyChecking=accept-new)."
    )
    python: str = Field("python3", description="Python on the host (3.10+).")
    workdir: str = Field("~/.shipyard-jobs", description="Where job folders and environments live there.")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if v.startswith("-") or any(c.isspace() for c in v):
            raise ValueError(f"{v!r} is not a host name")
        return v


class RayCompute(Strict):
    """A Ray cluster: an existing one by its dashboard address, or a local one Shipyard starts."""

    type: Literal["ray"]
    address: str | None = Field(
        None,
        description="Dashboard (Jobs API) URL of an existing cluster, e.g. http://ray-head:8265; "
        "none: `shipyard compute create NAME` starts a local cluster.",
    )
    client_address: str | None = Field(
        None,
        description="Where a driver connects to an existing cluster (ray.init), e.g. ray://ray-head:10001; "
        "needed by `shipyard batch-score --compute` on a cluster Shipyard did not start.",
    )
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local cluster; default: all.")
    idle_minutes: int = Field(
        60, ge=0, description="Stop a local cluster idle this long (checked by `shipyard reap`); 0: never."
    )
    entrypoint_num_cpus: float = Field(1, ge=0, description="CPUs reserved for each step's driver.")
    pip: list[str] = Field(default_factory=list, description="Extra pip packages for the job's runtime_env.")
    secrets_in_runtime_env: bool = Field(
        False,
        description="Allow step secrets on this cluster: Ray keeps a job's runtime_env (and so the "
        "values) in its job table, readable by anyone who can reach the dashboard.",
    )


class SparkCompute(Strict):
    """spark-submit to local[*] or a standalone master (the Databricks analogue)."""

    type: Literal["spark"]
    master: str = Field("local[*]", description="local[*], local[N] or spark://host:7077.")
    spark_submit: str | None = Field(
        None, description="Path of spark-submit; default: the one pyspark installs, else PATH."
    )
    conf: dict[str, str] = Field(default_factory=dict, description="--conf key=value pairs.")


ComputeSpec = Annotated[SshCompute | RayCompute | SparkCompute, Field(discriminator="type")]


class DistributedConfig(Strict):
    """Data-parallel training (`train.distributed`): the script runs once per worker under Ray
    Train's TorchTrainer with torch.distributed set up; only rank 0 logs (docs/compute.md)."""

    workers: int = Field(..., ge=1, le=1024, description="Training workers (processes), one CPU or GPU each.")
    gpu: bool = Field(False, description="One GPU per worker (the cluster must have them).")
    backend: Literal["gloo", "nccl"] | None = Field(
        None, description="torch.distributed backend; default gloo, nccl with gpu: true."
    )

    @property
    def torch_backend(self) -> str:
        return self.backend or ("nccl" if self.gpu else "gloo")
