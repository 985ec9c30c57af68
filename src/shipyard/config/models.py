"""Pydantic models of shipyard.yaml. The schema is the documentation: every field has a description."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from shipyard.config.base import Strict as _Strict
from shipyard.config.ci import CiConfig
from shipyard.config.compute import BUILT_IN, ComputeSpec, DistributedConfig, check_compute_name
from shipyard.config.environments import EnvironmentConfig, NotificationsConfig, check_environments
from shipyard.config.packages import PackageSources
from shipyard.config.sweep import SweepConfig
from shipyard.config.targets import TargetConfig
from shipyard.names import config_name
from shipyard.secrets.refs import SecretReference
from shipyard.serving.settings import ServingConfig


class S3Settings(_Strict):
    """Where an s3:// artifact store is and who Shipyard is there. Unset fields fall back to the
    standard variables (AWS_ENDPOINT_URL_S3 / MLFLOW_S3_ENDPOINT_URL, AWS_DEFAULT_REGION,
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and boto3's own chain (profiles, instance roles)."""

    endpoint_url: str | None = Field(
        None, description="S3-compatible server URL (MinIO, SeaweedFS, Ceph); default: AWS S3."
    )
    region: str | None = Field(None, description="Region; default AWS_DEFAULT_REGION or us-east-1.")
    access_key_id: SecretReference | None = Field(None, description="Reference to the access key id.")
    secret_access_key: SecretReference | None = Field(None, description="Reference to the secret key.")


class WorkspaceSettings(_Strict):
    """Where the stores live. Precedence: CLI flag > SHIPYARD_* variable > file > default."""

    root: str = Field(".shipyard", description="Workspace folder, relative to the project folder.")
    database_uri: str | None = Field(
        None, description="Database URI for MLflow and Shipyard's store; default sqlite:///<root>/shipyard.db"
    )
    artifact_uri: str | None = Field(None, description="Artifact store URI; default file://<root>/artifacts")
    file: str | None = Field(None, description="Optional YAML file holding these settings (relative path).")
    database_password: SecretReference | None = Field(
        None,
        description="Reference (env:NAME, keyring:service/name, file:PATH) to the database password, for "
        "a database_uri without one. PGPASSWORD and ~/.pgpass work too. Never put the password in the URI.",
    )
    s3: S3Settings | None = Field(None, description="Endpoint and credentials of an s3:// artifact store.")
    pool_size: int = Field(
        5,
        ge=1,
        le=100,
        description="Database connections each process keeps (plus up to twice as many on demand): a CLI "
        "command uses one or two; a long-running server with many threads wants more.",
    )


class DataCheckConfig(_Strict):
    """The data check step: row count, schema, missing values, distribution against reference statistics."""

    path: str = Field(..., description="CSV file to check (relative to the project).")
    data_schema: str | None = Field(
        None,
        alias="schema",
        description="pandera schema as 'file.py:Name' (a DataFrameModel or DataFrameSchema).",
    )
    reference: str | None = Field(None, description="JSON reference statistics (per column mean and std).")
    tolerance_std: float = Field(
        1.0, gt=0, description="Each column's mean and std must lie within this many reference std."
    )
    max_missing_fraction: float = Field(0.0, ge=0, le=1, description="Allowed fraction of missing values.")
    min_rows: int | None = Field(
        None,
        ge=1,
        description="Fewer rows fail the check. Default: 10% of the reference's row count, at least 50 "
        "(50 without a reference).",
    )


class TrainConfig(_Strict):
    """The training step: a plain Python script run in a subprocess."""

    script: str = Field("train.py", description="Training script, relative to the project.")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Hyper-parameters passed to the script."
    )
    inputs: dict[str, str] = Field(
        default_factory=dict, description="Named input files; default {'data': data_check.path}."
    )
    code: list[str] = Field(
        default_factory=list, description="Extra code files that belong to the cache key."
    )
    environment: str | None = Field(
        None,
        description="Environment spec (requirements.txt or conda .yml): in the cache key; "
        "the venv target builds its environment from it.",
    )
    timeout_s: float = Field(3600, gt=0, description="Kill the script after this many seconds.")
    secrets: list[str] = Field(
        default_factory=list, description="Names from the secrets: section given to the script as env vars."
    )
    compute: str = Field(
        "local",
        description="Where the script runs: local (this Python), venv (an isolated environment "
        "built from `environment`, cached by its content hash) or a name from the compute: section "
        "or `shipyard compute list`.",
    )
    sweep: SweepConfig | None = Field(
        None,
        description="Hyper-parameter search: grid or random trials, each a child run; the best by "
        "the gate's metric is the step's output (docs/sweep.md).",
    )
    distributed: DistributedConfig | None = Field(
        None,
        description="Data-parallel training on a Ray compute: {workers: N, gpu: false}; the script "
        "runs on N Ray Train workers with torch.distributed set up (docs/compute.md).",
    )

    @model_validator(mode="after")
    def _distributed_needs_a_cluster(self) -> TrainConfig:
        if self.distributed is not None and self.compute in BUILT_IN:
            raise ValueError(
                f"train.distributed runs the script on Ray Train workers, not on compute {self.compute!r}: "
                "set train.compute to a ray compute (`shipyard compute create NAME --type ray`)"
            )
        return self

    @model_validator(mode="after")
    def _venv_needs_a_spec(self) -> TrainConfig:
        if self.compute == "venv" and not self.environment:
            raise ValueError(
                "train.compute: venv builds the environment from train.environment: "
                "set it to a requirements.txt or an Azure ML conda_dependencies.yml"
            )
        return self


class GateConfig(_Strict):
    """Evaluation gate: candidate run vs the version holding the production alias."""

    enabled: bool = True
    metric: str = Field("mse", description="Metric logged by the training run.")
    direction: Literal["lower", "higher"] = Field("lower", description="Which direction is better.")
    min_absolute_change: float = Field(0.0, ge=0, description="Required improvement, absolute.")
    min_relative_change: float = Field(
        0.0, ge=0, description="Required improvement, relative to the champion."
    )
    threshold: float | None = Field(None, description="Absolute bar the candidate must meet (PASSING_POINT).")
    min_eval_rows: int = Field(
        10,
        ge=0,
        description="Refuse a metric computed on fewer evaluation rows (the run's `eval_rows` metric); "
        "a run that does not log it is compared as before, with a note. 0 turns the check off.",
    )


class RegistryConfig(_Strict):
    """Model registration in MLflow's registry."""

    model_name: str = Field(..., min_length=1, description="Registered model name.")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags set on every new version.")
    metric_tags: list[str] = Field(default_factory=list, description="Run metrics copied onto version tags.")
    register_alias: str | None = Field("staging", description="Alias set on every newly registered version.")
    promote_on_pass: bool = Field(True, description="Move the 'production' alias when the gate passes.")
    load_check: bool = Field(
        True,
        description="Before registering, build the bundle and score the input sample in a separate process; "
        "a model that does not load or score is not registered (needs a deployment section).",
    )

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, v: str) -> str:
        return config_name("model name", v)

    @field_validator("register_alias")
    @classmethod
    def _alias(cls, v: str | None) -> str | None:
        return v if v is None else config_name("alias", v)


class SmokeTestConfig(_Strict):
    timeout_s: float = Field(60, gt=0, description="Retry the sample request until this deadline.")


class AzureMLSource(_Strict):
    """Azure ML config files to import (config/azureml.py); fields set in shipyard.yaml win."""

    deployment_config: str | None = Field(
        None, description="deployment_config_aci.yml / deployment_config_aks.yml (relative to the project)."
    )
    inference_config: str | None = Field(None, description="inference_config.yml (relative to the project).")

    @model_validator(mode="after")
    def _one_file(self) -> AzureMLSource:
        if self.deployment_config is None and self.inference_config is None:
            raise ValueError("set deployment_config, inference_config or both")
        return self


class DeploymentConfig(TargetConfig):
    """A deployment of the scoring server: what it serves, how, and where (TargetConfig)."""

    name: str = Field("dev", description="Endpoint name (names.py: lower case, digits, '-', at most 41).")
    entry_script: str | None = Field(
        "score.py",
        description="Scoring script with init() and run(data); null serves the MLflow model (pyfunc).",
    )
    requirements: str | None = Field(None, description="Pinned requirements for the bundle.")
    input_sample: str | None = Field(None, description="JSON file with the smoke-test payload.")
    code: list[str] = Field(
        default_factory=list,
        description="The project's own modules score.py (or the model) imports: files and folders, relative "
        "to the project; packaged under code/ in the bundle and on the server's path everywhere.",
    )
    host: str = Field("127.0.0.1", description="Interface the server binds to.")
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port for each deployment.")
    health_timeout_s: float = Field(60, gt=0, description="Wait this long for GET / to answer.")
    smoke_test: SmokeTestConfig = Field(default_factory=SmokeTestConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    packages: PackageSources | None = Field(
        None,
        description="Indexes and find-links for the bundle's own environment (local target); default: the "
        "project's packages: section.",
    )
    azureml: AzureMLSource | None = Field(
        None, description="Import these Azure ML files first (docs/azureml-configs.md)."
    )

    @field_validator("code")
    @classmethod
    def _code(cls, v: list[str]) -> list[str]:
        for entry in v:
            parts = entry.replace("\\", "/").strip("/").split("/")
            if not entry.strip() or entry.startswith(("/", "~")) or ".." in parts:
                raise ValueError(f"{entry!r}: give a file or folder relative to the project, inside it")
        return [e.strip().rstrip("/") for e in v]

    @field_validator("name")
    @classmethod
    def _endpoint_name(cls, v: str) -> str:
        return config_name("endpoint name", v)


class ProjectConfig(_Strict):
    """The whole shipyard.yaml."""

    name: str = Field(..., min_length=1, description="Project name.")
    experiment: str | None = Field(None, description="MLflow experiment name; default: the project name.")
    workspace: WorkspaceSettings = Field(default_factory=WorkspaceSettings)
    data_check: DataCheckConfig | None = None
    train: TrainConfig = Field(default_factory=TrainConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    registry: RegistryConfig
    deployment: DeploymentConfig | None = None
    secrets: dict[str, SecretReference] = Field(
        default_factory=dict,
        description="NAME: env:VAR | keyring:service/name | file:PATH (docs/secrets.md).",
    )
    secret_scan: Literal["warn", "fail", "off"] = Field(
        "warn",
        description="After each step, look for known secret values in its MLflow run, artifacts and "
        "outputs: warn, fail the step, or off (docs/secrets.md).",
    )
    compute: dict[str, ComputeSpec] = Field(
        default_factory=dict, description="Named compute targets: ssh, ray, spark (docs/compute.md)."
    )
    environments: dict[str, EnvironmentConfig] = Field(
        default_factory=dict,
        description="dev/qa/prod: deployment, promotes_from, approval (docs/environments.md).",
    )
    notifications: NotificationsConfig | None = Field(
        None, description="Webhooks for gate/promotion/failure/reap."
    )
    ci: CiConfig = Field(default_factory=CiConfig, description="Generated CI/CD workflows (docs/ci.md).")
    packages: PackageSources | None = Field(
        None,
        description="Where built environments (the venv compute target, local serving) get their packages: "
        "index_url, extra_index_urls, find_links, no_index.",
    )

    # Set by the loader, not by the user.
    project_dir: Path = Field(default=Path("."), exclude=True)
    source_file: Path | None = Field(default=None, exclude=True)
    # What loading noticed but did not stop for (Azure ML fields without an equivalent).
    config_warnings: list[str] = Field(default_factory=list, exclude=True)

    @field_validator("name")
    @classmethod
    def _project_name(cls, v: str) -> str:
        return config_name("project name", v)

    @model_validator(mode="after")
    def _default_inputs(self) -> ProjectConfig:
        if not self.train.inputs and self.data_check is not None:
            self.train.inputs = {"data": self.data_check.path}
        return self

    @model_validator(mode="after")
    def _step_secrets_are_defined(self) -> ProjectConfig:
        unknown = [n for n in self.train.secrets if n not in self.secrets]
        if unknown:
            defined = ", ".join(self.secrets) or "none"
            raise ValueError(
                f"train.secrets names {', '.join(unknown)}, not defined in the secrets: section "
                f"(defined: {defined})"
            )
        return self

    @model_validator(mode="after")
    def _deployment_packages(self) -> ProjectConfig:
        # Set (not defaulted), so the recorded deployment settings and the environments' overlay keep it.
        if self.packages is not None and self.deployment is not None and self.deployment.packages is None:
            self.deployment.packages = self.packages
        return self

    def anchor_paths(self) -> None:
        """Relative find_links folders made absolute from the project folder (the loader calls this
        once `project_dir` is known): a deployment record must find them from anywhere."""
        if self.packages is not None:
            self.packages = self.packages.anchored(self.project_dir)
        if self.deployment is not None and self.deployment.packages is not None:
            self.deployment.packages = self.deployment.packages.anchored(self.project_dir)

    @field_validator("environments")
    @classmethod
    def _environment_chain(cls, v: dict) -> dict:
        return check_environments(v)

    @model_validator(mode="after")
    def _train_compute_is_a_name(self) -> ProjectConfig:
        if self.train.compute not in BUILT_IN:
            config_name("compute name", self.train.compute)
        return self

    @field_validator("compute")
    @classmethod
    def _compute_names(cls, v: dict) -> dict:
        for name in v:
            check_compute_name(name)
        return v

    @property
    def experiment_name(self) -> str:
        return self.experiment or self.name

    def path(self, relative: str) -> Path:
        """Resolve a path from the config against the project folder."""
        p = Path(relative)
        return p if p.is_absolute() else self.project_dir / p
