"""THE definition of the project's CI/CD workflows: pr, train, release and schedule, as jobs of
ordered stages with their shell commands.

The generators (github.py, azure.py, gitlab.py) translate this into each CI system's YAML, and
the local runner runs the stages marked `local` in the same order with the same commands, so a
workflow is defined once. What differs between CI systems (checking out, installing Python,
publishing artifacts, finding the model version a release is about, writing a job summary) is a
stage `kind` that each generator renders in its own way; `run` stages are plain shell commands,
the same everywhere.

Commands refer to values through environment variables (`$SHIPYARD_MODEL_VERSION`,
`$SHIPYARD_ACTOR`) that each generator sets from its CI system's own variables, and secrets only
ever reach a job as environment variables from the CI system's secret store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shipyard.config.ci import INDEX_VAR, CiConfig, ci_index_secret, ci_install, ci_paths, ci_secret_names
from shipyard.config.models import ProjectConfig

StageKind = Literal["checkout", "setup_python", "install", "run", "publish", "resolve_version"]
VERSION_VAR = "SHIPYARD_MODEL_VERSION"
ACTOR_VAR = "SHIPYARD_ACTOR"
MODEL_ARTIFACT = "shipyard-model"
# `READ_VERSION FILE` prints the version in a model.json (on agents that have no Shipyard installed).
READ_VERSION = "python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[\"version\"])'"
COVERAGE_ARTIFACT = "coverage"


@dataclass(frozen=True)
class Condition:
    """When a stage or job runs beyond "everything before it succeeded".

    always: also after a failure (a summary); registered: the train job registered a new version
    (its `version` output is not empty); failed: the job named `job` failed (rollback)."""

    kind: Literal["always", "registered", "failed"]
    job: str | None = None


@dataclass(frozen=True)
class Stage:
    """One step of a job. `local`: the local runner runs it too (setup and publishing are CI-only)."""

    name: str
    title: str
    kind: StageKind = "run"
    commands: tuple[str, ...] = ()
    local: bool = True
    condition: Condition | None = None
    # run stages: the command's stdout is the step output `output` (e.g. the registered version) ...
    output: str | None = None
    # ... or is appended to the job summary (GitHub step summary, Azure uploadsummary, GitLab log).
    summary: bool = False
    # publish stages: files (relative to the project) and the artifact's name.
    files: tuple[str, ...] = ()
    artifact: str | None = None
    # publish stages: a Cobertura coverage report the CI system can show.
    coverage: str | None = None
    # install stages: environment variables set from CI secrets for this step only (variable,
    # secret), such as pip's index URL from ci.index; PR jobs get these and no other secret.
    secret_env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Job:
    """Stages that run on one agent, after the jobs in `needs`.

    environment: the CI system's deployment environment (GitHub environments, Azure DevOps
    environments, GitLab environments); approval: wait for a person there (GitHub required
    reviewers and Azure approvals are set on the environment; GitLab gets `when: manual`);
    release: runs only when there is a model version to release."""

    name: str
    title: str
    stages: tuple[Stage, ...]
    needs: tuple[str, ...] = ()
    environment: str | None = None
    approval: bool = False
    release: bool = False
    condition: Condition | None = None
    secrets: bool = True


@dataclass(frozen=True)
class Trigger:
    """What starts a workflow. Paths are relative to the project folder."""

    pull_request: bool = False
    push_paths: tuple[str, ...] = ()
    after_workflow: str | None = None
    manual: bool = True
    version_input: bool = False
    crons: tuple[tuple[str, str], ...] = ()  # (schedule name, cron)


@dataclass(frozen=True)
class Workflow:
    name: Literal["pr", "train", "release", "schedule"]
    title: str
    trigger: Trigger
    jobs: tuple[Job, ...]
    concurrency: str | None = None


@dataclass(frozen=True)
class Plan:
    """Everything a generator needs: the workflows and the facts shared by all of them."""

    project: str
    ci: CiConfig
    secrets: tuple[str, ...]
    workflows: tuple[Workflow, ...] = field(default=())

    @property
    def python(self) -> str:
        return self.ci.python

    @property
    def main_branch(self) -> str:
        return self.ci.main_branch

    def workflow(self, name: str) -> Workflow:
        return next(w for w in self.workflows if w.name == name)


def _setup(config: ProjectConfig, extra: str | None = None) -> tuple[Stage, ...]:
    commands = ci_install(config)
    if extra:
        commands = [*commands, extra]
    index = ci_index_secret(config)
    return (
        Stage("checkout", "Check out the repository", kind="checkout", local=False),
        Stage("python", f"Set up Python {config.ci.python}", kind="setup_python", local=False),
        Stage(
            "install",
            "Install Shipyard and the project",
            kind="install",
            commands=tuple(commands),
            local=False,
            secret_env=((INDEX_VAR, index),) if index else (),
        ),
    )


def environment_chain(config: ProjectConfig) -> list[str]:
    """The environments in promotion order: each after the one it promotes from."""
    ordered: list[str] = []
    pending = dict(config.environments)
    while pending:
        ready = [n for n, e in pending.items() if e.promotes_from is None or e.promotes_from in ordered]
        ordered.extend(ready)
        for n in ready:
            del pending[n]
    return ordered


def pr_workflow(config: ProjectConfig) -> Workflow:
    stages = [
        *_setup(config, "python -m pip install ruff pytest pytest-cov"),
        Stage("lint", "Lint (ruff)", commands=(config.ci.lint,)),
        Stage("test", "Unit tests with coverage", commands=(config.ci.test,)),
    ]
    if config.data_check is not None:
        stages.append(Stage("data-check", "Data checks", commands=("shipyard data check",)))
    stages.append(
        Stage(
            "coverage",
            "Publish the coverage report",
            kind="publish",
            local=False,
            condition=Condition("always"),
            files=("coverage.xml",),
            artifact=COVERAGE_ARTIFACT,
            coverage="coverage.xml",
        )
    )
    # PR checks run on code from a branch: no workspace secrets for them.
    job = Job("checks", "PR checks", tuple(stages), secrets=False)
    return Workflow("pr", "PR checks", Trigger(pull_request=True, manual=False), (job,))


def train_workflow(config: ProjectConfig) -> Workflow:
    out = config.ci.outputs
    stages = (
        *_setup(config),
        # No --fail-on-reject: a rejected candidate is a verdict, not a broken build.
        Stage(
            "pipeline",
            "Run the pipeline up to registration",
            commands=(f"shipyard run --until register --outputs {out}",),
        ),
        Stage(
            "registered",
            "Find the newly registered version",
            output="version",
            commands=(f"shipyard ci version {out}",),
        ),
        Stage(
            "summary",
            "Gate verdict",
            summary=True,
            condition=Condition("always"),
            commands=(f"shipyard ci summary {out}",),
        ),
        Stage(
            "publish",
            "Publish run.json and model.json",
            kind="publish",
            local=False,
            condition=Condition("registered"),
            files=(f"{out}/run.json", f"{out}/model.json"),
            artifact=MODEL_ARTIFACT,
        ),
    )
    crons = (("retrain", config.ci.retrain_cron),) if config.ci.retrain_cron else ()
    trigger = Trigger(push_paths=tuple(ci_paths(config)), crons=crons)
    job = Job("train", "Train, evaluate and register", stages)
    return Workflow("train", "train", trigger, (job,), concurrency="train")


def _env_job_name(env: str) -> str:
    return f"deploy-{env}"


def release_workflow(config: ProjectConfig) -> Workflow | None:
    """deploy the first environment → smoke test → promote along the chain, approvals where
    configured, and a rollback job for the environment whose job failed. None without environments."""
    chain = environment_chain(config)
    if not chain:
        return None
    resolve = Job(
        "resolve",
        "Find the model version to release",
        (
            Stage(
                "version",
                "Model version from the train run or the manual input",
                kind="resolve_version",
                local=False,
                output="version",
            ),
        ),
        secrets=False,
    )
    jobs = [resolve]
    version = f'"${VERSION_VAR}"'
    for env in chain:
        e = config.environments[env]
        if e.promotes_from is None:
            command = f'shipyard env deploy {env} --version {version} --reason "release by CI"'
            title = f"Deploy to {env}"
            needs: tuple[str, ...] = ("resolve",)
        else:
            approve = f' --approve --by "${ACTOR_VAR}"' if e.requires_approval else ""
            command = f'shipyard promote --to {env} --version {version}{approve} --reason "release by CI"'
            title = f"Promote to {env}"
            needs = ("resolve", _env_job_name(e.promotes_from))
        stages = (
            *_setup(config),
            Stage(env, title, commands=(command,)),
            Stage(
                f"smoke-{env}",
                f"Smoke test {env}",
                commands=(f"shipyard ci smoke {env} --version {version}",),
            ),
        )
        jobs.append(
            Job(
                _env_job_name(env),
                title,
                stages,
                needs=needs,
                environment=env,
                approval=e.requires_approval,
                release=True,
            )
        )
    rollback = tuple(
        Stage(
            f"rollback-{env}",
            f"Roll {env} back",
            commands=(f"shipyard rollback {env} --version {version}",),
            condition=Condition("failed", _env_job_name(env)),
        )
        for env in reversed(chain)
    )
    jobs.append(
        Job(
            "rollback",
            "Roll back the environment that failed",
            (*_setup(config), *rollback),
            needs=tuple(_env_job_name(e) for e in chain),
            condition=Condition("failed"),
            release=True,
        )
    )
    trigger = Trigger(after_workflow="train", version_input=True)
    return Workflow("release", "release", trigger, tuple(jobs), concurrency="release")


def schedule_workflow(config: ProjectConfig) -> Workflow | None:
    """The reaper on its cron (scheduled retraining is a trigger of the train workflow, so that a
    retrained model goes through the same release)."""
    if not config.ci.reap_cron:
        return None
    stages = (
        *_setup(config),
        Stage("reap", "Delete expired dev deployments, stop idle clusters", commands=("shipyard reap",)),
    )
    trigger = Trigger(crons=(("reap", config.ci.reap_cron),))
    return Workflow("schedule", "schedule", trigger, (Job("reap", "Reaper", stages),), concurrency="reap")


def plan(config: ProjectConfig) -> Plan:
    """The project's workflows, in the order pr, train, release, schedule (those that apply)."""
    flows = [pr_workflow(config), train_workflow(config), release_workflow(config), schedule_workflow(config)]
    return Plan(
        project=config.name,
        ci=config.ci,
        secrets=tuple(ci_secret_names(config)),
        workflows=tuple(w for w in flows if w is not None),
    )
