"""GitHub Actions: one workflow file per workflow under .github/workflows/.

Secrets come from `${{ secrets.NAME }}` (repository or environment secrets); approvals are the
required reviewers of a GitHub environment (`environment: prod`), set in the repository's
settings, not in YAML. The release starts when the train workflow completes (`workflow_run`) and
finds the version in the model artifact that run published (there is none when nothing new was
registered), or from the manual run's `version` input.
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

CHECKOUT = "actions/checkout@v5"
SETUP_PYTHON = "actions/setup-python@v6"
UPLOAD = "actions/upload-artifact@v6"
HAS_VERSION = "needs.resolve.outputs.version != ''"

NOTES = (
    "Secrets: repository (or environment) secrets named {secrets}.",
    "Approvals: add required reviewers to the GitHub environments that need them (Settings → Environments).",
)


def _path(wd: str, relative: str) -> str:
    return relative if wd == "." else f"{wd}/{relative}"


def _condition(cond: Condition | None, job: Job) -> str | None:
    if cond is None:
        return None
    if cond.kind == "always":
        return "always()"
    if cond.kind == "registered":
        source = next(s for s in job.stages if s.output == "version")
        return f"steps.{source.name}.outputs.version != ''"
    return f"needs.{cond.job}.result == 'failure'"


def _resolve_script(workflow: Workflow) -> str:
    train = workflow.trigger.after_workflow
    return script(
        [
            'version="$INPUT_VERSION"',
            'if [ -z "$version" ] && [ -n "$TRAIN_RUN_ID" ]; then',
            f'  if gh run download "$TRAIN_RUN_ID" --repo "$GITHUB_REPOSITORY" --name {MODEL_ARTIFACT} '
            "--dir model; then",
            f'    version="$({READ_VERSION} model/model.json)"',
            "  else",
            f'    echo "the {train} run registered no new model version: nothing to release"',
            "  fi",
            "fi",
            'echo "version=$version" >> "$GITHUB_OUTPUT"',
        ]
    )


def _step(stage: Stage, job: Job, plan: Plan, workflow: Workflow, wd: str) -> dict[str, Any]:
    step: dict[str, Any] = {"name": stage.title, "id": stage.name}
    cond = _condition(stage.condition, job)
    if cond:
        step["if"] = cond
    if stage.kind == "checkout":
        step["uses"] = CHECKOUT
    elif stage.kind == "setup_python":
        step["uses"] = SETUP_PYTHON
        step["with"] = {"python-version": plan.python}
    elif stage.kind == "publish":
        step["uses"] = UPLOAD
        step["with"] = {
            "name": stage.artifact,
            "path": script([_path(wd, f) for f in stage.files]),
            "if-no-files-found": "warn" if stage.coverage else "error",
        }
    elif stage.kind == "resolve_version":
        step["env"] = {
            "GH_TOKEN": "${{ github.token }}",
            "INPUT_VERSION": "${{ inputs.version }}",
            "TRAIN_RUN_ID": "${{ github.event.workflow_run.id }}",
        }
        step["run"] = _resolve_script(workflow)
    elif stage.output:
        step["run"] = script(
            [
                f'{stage.output}="$({" && ".join(stage.commands)})"',
                f'echo "{stage.output}=${stage.output}" >> "$GITHUB_OUTPUT"',
            ]
        )
    elif stage.summary:
        step["run"] = script([f'{c} >> "$GITHUB_STEP_SUMMARY"' for c in stage.commands])
    else:
        step["run"] = script(stage.commands)
    if stage.secret_env:
        step["env"] = {var: f"${{{{ secrets.{secret} }}}}" for var, secret in stage.secret_env}
    return step


def _job(plan: Plan, workflow: Workflow, job: Job, wd: str) -> dict[str, Any]:
    runs_on = plan.ci.runner if plan.ci.self_hosted else "ubuntu-latest"
    out: dict[str, Any] = {"name": job.title, "runs-on": runs_on}
    needs = list(job.needs)
    if job.release and "resolve" not in needs:
        needs.insert(0, "resolve")
    if needs:
        out["needs"] = needs
    if job.name == "resolve":
        out["if"] = (
            "github.event_name == 'workflow_dispatch' || github.event.workflow_run.conclusion == 'success'"
        )
    elif job.release:
        out["if"] = f"failure() && {HAS_VERSION}" if job.condition == Condition("failed") else HAS_VERSION
    if job.environment:
        out["environment"] = job.environment
    env: dict[str, str] = {}
    if job.secrets:
        env.update({name: f"${{{{ secrets.{name} }}}}" for name in plan.secrets})
    if job.release:
        env[VERSION_VAR] = "${{ needs.resolve.outputs.version }}"
    if job.approval:
        env[ACTOR_VAR] = "${{ github.actor }}"
    if env:
        out["env"] = env
    outputs = {s.output: f"${{{{ steps.{s.name}.outputs.{s.output} }}}}" for s in job.stages if s.output}
    if outputs:
        out["outputs"] = outputs
    has_checkout = any(s.kind == "checkout" for s in job.stages)
    if has_checkout and wd != ".":
        out["defaults"] = {"run": {"working-directory": wd}}
    out["steps"] = [_step(s, job, plan, workflow, wd) for s in job.stages] + [
        user_section(f"{job.name}-steps")
    ]
    return out


def _on(plan: Plan, workflow: Workflow, wd: str) -> dict[str, Any]:
    t = workflow.trigger
    on: dict[str, Any] = {}
    branches = [plan.main_branch]
    if t.pull_request:
        on["pull_request"] = {"branches": branches}
    if t.push_paths:
        on["push"] = {"branches": branches, "paths": [_path(wd, p) for p in t.push_paths]}
    if t.after_workflow:
        on["workflow_run"] = {
            "workflows": [f"{plan.project} {t.after_workflow}"],
            "types": ["completed"],
            "branches": branches,
        }
    if t.crons:
        on["schedule"] = [{"cron": cron} for _, cron in t.crons]
    if t.manual:
        inputs = {"version": {"description": "Model version to release", "required": True, "type": "string"}}
        on["workflow_dispatch"] = {"inputs": inputs} if t.version_input else {}
    return on


def workflow_file(plan: Plan, workflow: Workflow, wd: str) -> dict[str, Any]:
    permissions = {"contents": "read"}
    if workflow.trigger.after_workflow:
        permissions["actions"] = "read"  # download the train run's artifact
    data: dict[str, Any] = {
        "name": f"{plan.project} {workflow.title}",
        "on": _on(plan, workflow, wd),
        "permissions": permissions,
    }
    if workflow.concurrency:
        data["concurrency"] = {"group": f"{plan.project}-{workflow.concurrency}", "cancel-in-progress": False}
    data["defaults"] = {"run": {"shell": "bash"}}
    jobs: dict[str, Any] = {j.name: _job(plan, workflow, j, wd) for j in workflow.jobs}
    jobs[user_section("jobs")] = None
    data["jobs"] = jobs
    return data


def files(plan: Plan, wd: str) -> dict[str, dict[str, Any]]:
    """{path under the output folder: workflow data}."""
    return {
        f".github/workflows/{plan.project}-{w.name}.yml": workflow_file(plan, w, wd) for w in plan.workflows
    }


def notes(plan: Plan) -> list[str]:
    return [n.format(secrets=", ".join(plan.secrets)) for n in NOTES]
