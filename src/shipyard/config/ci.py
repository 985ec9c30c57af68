"""The `ci:` section of shipyard.yaml: what `shipyard ci generate` needs beyond the project itself.

    ci:
      provider: github            # default for `shipyard ci generate` without --provider
      python: "3.11"
      main_branch: main
      paths: [train.py, schema.py, data/diabetes.csv]   # default: derived from the project
      retrain_cron: "0 3 * * 1"   # null: no scheduled retraining
      reap_cron: "0 * * * *"      # null: no scheduled reaper
      runner: hosted              # or the label of a self-hosted runner / agent pool
      wheel: vendor/shipyard_mlops-0.1.0-py3-none-any.whl   # install this file, not the index's
      index: env:PRIVATE_INDEX_URL  # install from this index: a CI secret holding its URL

Everything has a default derived from the rest of the file, so a project without a `ci:` section
still gets working workflows; the defaults live here (`ci_paths`, `ci_install`) so that the
generators and the local runner agree on them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from shipyard import distribution
from shipyard.config.base import Strict

if TYPE_CHECKING:
    from shipyard.config.models import ProjectConfig

PROVIDERS = ("github", "azure", "gitlab")
# Five fields of digits, names, * / , - (the cron all three CI systems understand).
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-]+$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/\-]+$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
HOSTED = "hosted"


class CiConfig(Strict):
    """Generated CI/CD (docs/ci.md): PR checks, train on main, release through environments, schedules."""

    provider: Literal["github", "azure", "gitlab"] = Field(
        "github", description="CI system `shipyard ci generate` writes for when --provider is not given."
    )
    python: str = Field("3.11", pattern=r"^3\.\d+$", description="Python version of the CI jobs.")
    main_branch: str = Field("main", description="Branch whose pushes train and release.")
    working_directory: str | None = Field(
        None,
        description="The project folder relative to the repository root; default: its place under "
        "the --out folder of `shipyard ci generate`.",
    )
    paths: list[str] | None = Field(
        None,
        description="Files whose change on the main branch retrains (relative to the project); default: "
        "shipyard.yaml, train.script, train.code, data_check.path, the schema file, train.environment.",
    )
    install: list[str] | None = Field(
        None,
        description="Commands that install Shipyard and the project's requirements; default: pip install "
        "shipyard-mlops==<the version that generated the files> (or ci.wheel) and, for a requirements "
        "file, `pip install -r train.environment`.",
    )
    wheel: str | None = Field(
        None,
        description="A Shipyard wheel in the repository (relative to the project) that the default install "
        "step installs instead of the published distribution; `shipyard init --vendor-wheel` sets it.",
    )
    index: str | None = Field(
        None,
        description="env:NAME of a CI secret holding the URL (with its token) of the package index the "
        "install step uses (pip's PIP_INDEX_URL, set for that step only); default: the runner's index.",
    )
    lint: str = Field("ruff check .", description="The PR lint command.")
    test: str = Field(
        "python -m pytest --cov --cov-report=term --cov-report=xml:coverage.xml",
        description="The PR unit-test command; it should write coverage.xml (Cobertura).",
    )
    retrain_cron: str | None = Field(
        "0 3 * * 1", description="Retrain on this cron (UTC, 5 fields); null: no scheduled retraining."
    )
    reap_cron: str | None = Field(
        "0 * * * *",
        description="Run `shipyard reap` (expired dev deployments, idle clusters) on this cron; null: never.",
    )
    outputs: str = Field(
        "shipyard-outputs", description="Folder for run.json / model.json handed between jobs."
    )
    azure_variable_group: str = Field(
        "shipyard", description="Azure DevOps variable group holding the secret variables."
    )
    azure_vm_image: str = Field("ubuntu-latest", description="Azure Pipelines hosted agent image.")
    runner: str = Field(
        HOSTED,
        description="Where the jobs run: `hosted` (the CI system's ephemeral machines) or the label of "
        "a self-hosted runner (GitHub runs-on, Azure agent pool, GitLab runner tag).",
    )

    @property
    def self_hosted(self) -> bool:
        return self.runner != HOSTED

    @field_validator("runner")
    @classmethod
    def _runner_label(cls, v: str) -> str:
        if not _LABEL.match(v):
            raise ValueError(
                f"{v!r} is not a runner label: use `hosted` or a label of letters, digits, '.', '_', '-'"
            )
        return v

    @field_validator("retrain_cron", "reap_cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return v
        fields = v.split()
        if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
            raise ValueError(
                f"{v!r} is not a 5-field cron (minute hour day-of-month month day-of-week), e.g. '0 3 * * 1'"
            )
        return " ".join(fields)

    @field_validator("main_branch")
    @classmethod
    def _branch(cls, v: str) -> str:
        if not _BRANCH.match(v):
            raise ValueError(f"{v!r} is not a branch name")
        return v

    @field_validator("wheel")
    @classmethod
    def _wheel(cls, v: str | None) -> str | None:
        if v is not None and not v.endswith(".whl"):
            raise ValueError(f"{v!r} is not a wheel file: name a .whl in the repository (`make dist`)")
        return v

    @field_validator("index")
    @classmethod
    def _index(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^env:[A-Za-z_][A-Za-z0-9_]*$", v):
            # The type "secret_reference" keeps the value out of the message (config/loader.py).
            raise PydanticCustomError(
                "secret_reference",
                "give the index as env:NAME, the CI secret holding its URL (a URL carries its token: "
                "never in shipyard.yaml)",
            )
        return v

    @field_validator("paths", "working_directory", "wheel")
    @classmethod
    def _relative(cls, v: str | list[str] | None) -> str | list[str] | None:
        for p in [v] if isinstance(v, str) else v or []:
            if p.startswith("/") or ".." in p.split("/") or not p.strip():
                raise ValueError(f"{p!r}: use a path relative to the project, inside it")
        return v


def _file_of(schema_ref: str) -> str:
    """'schema.py:DiabetesSchema' → 'schema.py'."""
    return schema_ref.rpartition(":")[0] or schema_ref


def ci_paths(config: ProjectConfig) -> list[str]:
    """The files (relative to the project) whose change on the main branch means: train again."""
    if config.ci.paths is not None:
        return list(config.ci.paths)
    found = ["shipyard.yaml", config.train.script, *config.train.code]
    if config.data_check is not None:
        found.append(config.data_check.path)
        if config.data_check.data_schema:
            found.append(_file_of(config.data_check.data_schema))
    if config.train.environment:
        found.append(config.train.environment)
    found.extend(config.train.inputs.values())
    return list(dict.fromkeys(p.removeprefix("./") for p in found))


INDEX_VAR = "PIP_INDEX_URL"  # what pip reads; set from the ci.index secret for the install step


def ci_index_secret(config: ProjectConfig) -> str | None:
    """The CI secret holding the private index's URL (ci.index), or None."""
    return config.ci.index.removeprefix("env:") if config.ci.index else None


def ci_install(config: ProjectConfig) -> list[str]:
    """The commands that install Shipyard and the project's own requirements on a CI agent."""
    if config.ci.install is not None:
        return list(config.ci.install)
    shipyard = config.ci.wheel or distribution.requirement()
    commands = ["python -m pip install --upgrade pip", f"python -m pip install {shipyard}"]
    env = config.train.environment
    if env and env.endswith(".txt"):
        commands.append(f"python -m pip install -r {env}")
    return commands


def ci_secret_names(config: ProjectConfig) -> list[str]:
    """Names the CI system's secret store must hold: the shared workspace, then every env: reference
    of the secrets: section and of the notification webhooks (keyring:/file: ones cannot come from CI)."""
    from shipyard.secrets.refs import parse_ref

    names = ["SHIPYARD_DATABASE_URI", "SHIPYARD_ARTIFACT_URI"]
    index = ci_index_secret(config)
    if index:
        names.append(index)
    refs = list(config.secrets.values())
    if config.notifications is not None:
        refs.extend(config.notifications.webhooks)
    for ref in refs:
        parsed = parse_ref(str(ref))
        if parsed.scheme == "env":
            names.append(parsed.target)
    return list(dict.fromkeys(names))
