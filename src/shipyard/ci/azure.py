"""Azure Pipelines: one pipeline file per workflow under azure-pipelines/.

Secrets are secret variables of a variable group (`ci.azure_variable_group`), mapped into each
step's environment with `$(NAME)` (Azure never exports secret variables by itself). Releases use
deployment jobs with `environment: NAME`; approvals and checks are configured on those Azure
DevOps environments. The release pipeline's `train` resource is the train pipeline, which must be
named `<project>-train` in Azure DevOps; a run it triggers finds the version in the artifact the
train run published (none when nothing new was registered), a manual run takes `version`.
"""

from __future__ import annotations

from typing import Any

from shipyard.ci.stages import (
    ACTOR_VAR,
    MODEL_ARTIFACT,
    READ_VERSION,
    VERSION_VAR,
    Condition,
    Job,
    Plan,
    Stage,
    Workflow,
)
from shipyard.ci.yamltext import script, user_section

FROM_TRAIN = "from-train"
RESOLVED = "dependencies.resolve.outputs['version.version']"

NOTES = (
    "Secrets: secret variables {secrets} in the variable group {group}.",
    "Approvals: add approvals and checks to the Azure DevOps environments that need them.",
    "Name the train pipeline {project}-train: the release pipeline is triggered by it.",
)


def _id(name: str) -> str:
    return name.replace("-", "_")


def _path(wd: str, relative: str) -> str:
    return (
        f"$(Build.SourcesDirectory)/{relative}" if wd == "." else f"$(Build.SourcesDirectory)/{wd}/{relative}"
    )


def _condition(cond: Condition | None, job: Job) -> str | None:
    if cond is None:
        return None
    if cond.kind == "always":
        return "always()"
    if cond.kind == "registered":
        source = next(s for s in job.stages if s.output == "version")
        return f"and(succeeded(), ne(variables['{source.name}.version'], ''))"
    return f"eq(variables['result_{_id(cond.job or '')}'], 'Failed')"


def _bash(stage: Stage, lines: list[str], plan: Plan, job: Job, wd: str) -> dict[str, Any]:
    step: dict[str, Any] = {"bash": script(["set -eo pipefail", *lines]), "displayName": stage.title}
    step["name"] = _id(stage.name)
    if wd != ".":
        step["workingDirectory"] = f"$(Build.SourcesDirectory)/{wd}"
    if job.secrets and stage.kind == "run":
        step["env"] = {name: f"$({name})" for name in plan.secrets}
    if stage.secret_env:
        step["env"] = {var: f"$({secret})" for var, secret in stage.secret_env}
    return step


def _steps(stage: Stage, job: Job, plan: Plan, wd: str) -> list[dict[str, Any]]:
    if stage.kind == "checkout":
        steps: list[dict[str, Any]] = [{"checkout": "self"}]
    elif stage.kind == "setup_python":
        steps = [
            {"task": "UsePythonVersion@0", "displayName": stage.title, "inputs": {"versionSpec": plan.python}}
        ]
    elif stage.kind == "publish":
        # A folder or, for the coverage report, the file itself. (PublishCodeCoverageResults@2 is
        # not in the official schema, and @1 is deprecated: the report is an artifact.)
        folder = stage.coverage or stage.files[0].rpartition("/")[0]
        steps = [
            {
                "task": "PublishPipelineArtifact@1",
                "displayName": stage.title,
                "inputs": {"targetPath": _path(wd, folder), "artifact": stage.artifact},
            }
        ]
    elif stage.kind == "resolve_version":
        download = {
            "download": "train",
            "artifact": MODEL_ARTIFACT,
            "displayName": "Download the train run's model",
            "condition": "eq(variables['Build.Reason'], 'ResourceTrigger')",
            "continueOnError": "true",
        }
        lines = [
            'version="$INPUT_VERSION"',
            f'if [ "$version" = "{FROM_TRAIN}" ]; then',
            '  version=""',
            '  if [ -f "$MODEL_JSON" ]; then',
            f'    version="$({READ_VERSION} "$MODEL_JSON")"',
            "  else",
            '    echo "the train run registered no new model version: nothing to release"',
            "  fi",
            "fi",
            'echo "##vso[task.setvariable variable=version;isOutput=true]$version"',
        ]
        step = {
            "bash": script(["set -eo pipefail", *lines]),
            "displayName": stage.title,
            "name": "version",
            "env": {
                "INPUT_VERSION": "${{ parameters.version }}",
                "MODEL_JSON": f"$(Pipeline.Workspace)/train/{MODEL_ARTIFACT}/model.json",
            },
        }
        steps = [download, step]
    elif stage.output:
        lines = [
            f'{stage.output}="$({" && ".join(stage.commands)})"',
            f'echo "##vso[task.setvariable variable={stage.output};isOutput=true]${stage.output}"',
        ]
        steps = [_bash(stage, lines, plan, job, wd)]
    elif stage.summary:
        file = "$AGENT_TEMPDIRECTORY/shipyard-summary.md"
        lines = [*(f'{c} > "{file}"' for c in stage.commands), f'echo "##vso[task.uploadsummary]{file}"']
        steps = [_bash(stage, lines, plan, job, wd)]
    else:
        steps = [_bash(stage, list(stage.commands), plan, job, wd)]
    cond = _condition(stage.condition, job)
    if cond:
        steps[-1]["condition"] = cond
    return steps


def _job(plan: Plan, job: Job, wd: str) -> dict[str, Any]:
    steps: list[Any] = [s for stage in job.stages for s in _steps(stage, job, plan, wd)]
    steps.append(user_section(f"{job.name}-steps"))
    needs = list(job.needs)
    if job.release and "resolve" not in needs:
        needs.insert(0, "resolve")
    variables: dict[str, str] = {}
    if job.release:
        variables[VERSION_VAR] = f"$[ {RESOLVED} ]"
    if job.approval:
        variables[ACTOR_VAR] = "$(Build.RequestedFor)"
    for stage in job.stages:
        if stage.condition is not None and stage.condition.kind == "failed":
            variables[f"result_{_id(stage.condition.job or '')}"] = (
                f"$[ dependencies.{_id(stage.condition.job or '')}.result ]"
            )
    condition = None
    if job.release:
        has_version = f"ne({RESOLVED}, '')"
        condition = (
            f"and(failed(), {has_version})"
            if job.condition == Condition("failed")
            else f"and(succeeded(), {has_version})"
        )
    if job.environment:
        out: dict[str, Any] = {
            "deployment": _id(job.name),
            "displayName": job.title,
            "environment": job.environment,
        }
    else:
        out = {"job": _id(job.name), "displayName": job.title}
    if needs:
        out["dependsOn"] = [_id(n) for n in needs]
    if condition:
        out["condition"] = condition
    if variables:
        out["variables"] = variables
    if job.environment:
        # Deployment jobs download every pipeline resource's artifacts unless told not to.
        out["strategy"] = {"runOnce": {"deploy": {"steps": [{"download": "none"}, *steps]}}}
    else:
        out["steps"] = steps
    return out


def _triggers(plan: Plan, workflow: Workflow, wd: str, group: str) -> dict[str, Any]:
    t = workflow.trigger
    branches = {"include": [plan.main_branch]}
    data: dict[str, Any] = {}
    if t.push_paths:
        paths = [p if wd == "." else f"{wd}/{p}" for p in t.push_paths]
        data["trigger"] = {"branches": branches, "paths": {"include": paths}}
    else:
        data["trigger"] = "none"
    data["pr"] = {"branches": branches} if t.pull_request else "none"
    if t.crons:
        data["schedules"] = [
            {"cron": cron, "displayName": name, "branches": branches, "always": "true"}
            for name, cron in t.crons
        ]
    if t.version_input:
        data["parameters"] = [
            {
                "name": "version",
                "displayName": f"Model version ({FROM_TRAIN}: the train run's)",
                "type": "string",
                "default": FROM_TRAIN,
            }
        ]
    if t.after_workflow:
        data["resources"] = {
            "pipelines": [
                {
                    "pipeline": "train",
                    "source": f"{plan.project}-{t.after_workflow}",
                    "trigger": {"branches": branches},
                }
            ]
        }
    if any(j.secrets or any(s.secret_env for s in j.stages) for j in workflow.jobs):
        data["variables"] = [{"group": group}]
    return data


def pipeline_file(plan: Plan, workflow: Workflow, wd: str, group: str, vm_image: str) -> dict[str, Any]:
    data: dict[str, Any] = {"name": f"{plan.project}-{workflow.name}-$(Date:yyyyMMdd)$(Rev:.r)"}
    data.update(_triggers(plan, workflow, wd, group))
    if workflow.concurrency:
        data["lockBehavior"] = "sequential"
    data["pool"] = {"name": plan.ci.runner} if plan.ci.self_hosted else {"vmImage": vm_image}
    data["jobs"] = [_job(plan, j, wd) for j in workflow.jobs]
    return data


def files(plan: Plan, wd: str) -> dict[str, dict[str, Any]]:
    """{path under the output folder: pipeline data}."""
    group, image = plan.ci.azure_variable_group, plan.ci.azure_vm_image
    return {
        f"azure-pipelines/{plan.project}-{w.name}.yml": pipeline_file(plan, w, wd, group, image)
        for w in plan.workflows
    }


def notes(plan: Plan) -> list[str]:
    group = plan.ci.azure_variable_group
    return [n.format(secrets=", ".join(plan.secrets), group=group, project=plan.project) for n in NOTES]
