"""GitLab CI: one .gitlab-ci.yml holding every workflow, told apart by rules.

Secrets are CI/CD variables (Settings → CI/CD → Variables; mark them protected and masked): GitLab
exports them to every job by itself, so the YAML names none of their values. Release jobs carry
`environment:`; an approval is `when: manual` on a protected environment's job. Schedules are
pipeline schedules (CI/CD → Schedules) with the variable SHIPYARD_SCHEDULE=retrain or reap: GitLab
keeps crons outside the file, so the header says which crons to create.

The release runs in the train pipeline after the train job, whose dotenv report hands over
SHIPYARD_MODEL_VERSION (empty when nothing new was registered: the release jobs then say so and
stop), or in a pipeline started by hand with SHIPYARD_MODEL_VERSION set.
"""

from __future__ import annotations

from typing import Any

from shipyard.ci.stages import ACTOR_VAR, VERSION_VAR, Job, Plan, Stage, Workflow
from shipyard.ci.yamltext import user_section

RELEASE_DIR = "shipyard-release"
DOTENV = "shipyard-release.env"
NOTHING = 'echo "no new model version: nothing to release"'
NOTES = (
    "Secrets: CI/CD variables {secrets} (protected, masked).",
    "Approvals: protect the environments that need approval; their jobs wait (when: manual).",
)
STAGES = {"pr": "checks", "train": "train", "release": "release", "schedule": "schedule"}


def _cd(wd: str) -> list[str]:
    return [] if wd == "." else [f'cd "$CI_PROJECT_DIR/{wd}"']


def _path(wd: str, relative: str) -> str:
    return relative if wd == "." else f"{wd}/{relative}"


def _lines(stage: Stage, wd: str) -> list[str]:
    """The script lines of a stage (checkout and Python come with the job's image)."""
    if stage.kind in ("checkout", "setup_python"):
        return []
    if stage.kind == "publish" and stage.coverage:
        return []  # artifacts:reports:coverage_report
    if stage.kind == "publish":
        files = " ".join(f'"{f}"' for f in stage.files)
        return [
            f'if [ -n "$version" ]; then mkdir -p "$CI_PROJECT_DIR/{RELEASE_DIR}" && '
            f'cp {files} "$CI_PROJECT_DIR/{RELEASE_DIR}/"; fi'
        ]
    if stage.output:
        return [
            f'{stage.output}="$({" && ".join(stage.commands)})"',
            f'echo "{VERSION_VAR}=${stage.output}" > "$CI_PROJECT_DIR/{DOTENV}"',
        ]
    if stage.secret_env:  # GitLab's CI/CD variables are in every job: set for these lines only
        exports = [f'export {var}="${secret}"' for var, secret in stage.secret_env]
        return [*exports, *stage.commands, f"unset {' '.join(var for var, _ in stage.secret_env)}"]
    return list(stage.commands)


def _rules(plan: Plan, workflow: Workflow, wd: str, when: str | None = None) -> list[dict[str, Any]]:
    main = f'$CI_COMMIT_BRANCH == "{plan.main_branch}"'
    t = workflow.trigger
    rules: list[dict[str, Any]] = []
    if t.pull_request:
        rules.append({"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'})
    train = plan.workflow("train").trigger if workflow.name in ("train", "release") else None
    if train is not None:
        rules.append(
            {
                "if": f'{main} && $CI_PIPELINE_SOURCE == "push"',
                "changes": [_path(wd, p) for p in train.push_paths],
            }
        )
        rules.append({"if": f'{main} && $CI_PIPELINE_SOURCE == "web" && $SHIPYARD_WORKFLOW == "train"'})
        for name, _ in train.crons:
            rules.append({"if": f'$CI_PIPELINE_SOURCE == "schedule" && $SHIPYARD_SCHEDULE == "{name}"'})
    if workflow.name == "release":
        rules.append({"if": f'$CI_PIPELINE_SOURCE == "web" && ${VERSION_VAR}'})
    if workflow.name == "schedule":
        for name, _ in t.crons:
            rules.append({"if": f'$CI_PIPELINE_SOURCE == "schedule" && $SHIPYARD_SCHEDULE == "{name}"'})
        rules.append({"if": f'$CI_PIPELINE_SOURCE == "web" && $SHIPYARD_WORKFLOW == "{workflow.name}"'})
    if when:
        rules = [r | {"when": when} for r in rules]
    return rules


def _job(plan: Plan, workflow: Workflow, job: Job, wd: str) -> dict[str, Any]:
    out: dict[str, Any] = {"stage": STAGES[workflow.name]}
    train_need = {"job": "train", "optional": True, "artifacts": True}
    if job.release:
        out["needs"] = [train_need, *(n for n in job.needs if n != "resolve")]
    elif workflow.name == "release":
        out["needs"] = [train_need]
    if job.environment:
        out["environment"] = {"name": job.environment}
    out["rules"] = _rules(plan, workflow, wd, "manual" if job.approval else None)
    if job.approval:
        out["allow_failure"] = False
    if job.approval:
        out["variables"] = {ACTOR_VAR: "$GITLAB_USER_LOGIN"}
    script = _cd(wd)
    if job.release:
        script.append(f'if [ -z "${{{VERSION_VAR}:-}}" ]; then {NOTHING}; exit 0; fi')
    always = [s for s in job.stages if s.condition is not None and s.condition.kind == "always"]
    for stage in job.stages:
        if stage not in always:
            script.extend(_lines(stage, wd))
    out["script"] = [*script, user_section(f"{job.name}-steps")]
    after = [line for s in always for line in _lines(s, wd)]
    if after:
        out["after_script"] = [*_cd(wd), *after]
    artifacts: dict[str, Any] = {}
    if any(s.output for s in job.stages):
        artifacts = {"paths": [f"{RELEASE_DIR}/"], "reports": {"dotenv": DOTENV}}
    coverage = next((s.coverage for s in job.stages if s.coverage), None)
    if coverage:
        report = {"coverage_format": "cobertura", "path": _path(wd, coverage)}
        artifacts = {"when": "always", "reports": {"coverage_report": report}}
        out["coverage"] = r"/TOTAL.*\s+(\d+(?:\.\d+)?%)/"
    if artifacts:
        out["artifacts"] = artifacts
    return out


def _rollback_job(plan: Plan, workflow: Workflow, job: Job, stage: Stage, wd: str) -> dict[str, Any]:
    env = stage.name.removeprefix("rollback-")
    install = [line for s in job.stages if s.kind == "install" for line in _lines(s, wd)]
    check = f'if [ -z "${{{VERSION_VAR}:-}}" ]; then echo "no release ran: nothing to roll back"; exit 0; fi'
    return {
        "stage": "rollback",
        "needs": [
            {"job": "train", "optional": True, "artifacts": True},
            stage.condition.job if stage.condition else env,
        ],
        "environment": {"name": env},
        "rules": _rules(plan, workflow, wd, "on_failure"),
        "script": [*_cd(wd), check, *install, *stage.commands, user_section(f"{stage.name}-steps")],
    }


def _jobs(plan: Plan, wd: str) -> dict[str, Any]:
    jobs: dict[str, Any] = {}
    for w in plan.workflows:
        for job in w.jobs:
            if job.name == "resolve":
                continue  # the train job's dotenv report (or the manual variable) is the version
            if job.name == "rollback":
                # One job per environment, after that environment's job: GitLab's on_failure then
                # looks at that job alone.
                for stage in job.stages:
                    if stage.condition is not None and stage.condition.kind == "failed":
                        jobs[stage.name] = _rollback_job(plan, w, job, stage, wd)
                continue
            jobs[job.name] = _job(plan, w, job, wd)
    return jobs


def pipeline_file(plan: Plan, wd: str) -> dict[str, Any]:
    stages = [STAGES[w.name] for w in plan.workflows]
    if any(w.name == "release" for w in plan.workflows):
        stages.insert(stages.index("release") + 1, "rollback")
    data: dict[str, Any] = {
        "workflow": {
            "rules": [
                {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'},
                {
                    "if": '$CI_COMMIT_BRANCH && $CI_OPEN_MERGE_REQUESTS && $CI_PIPELINE_SOURCE == "push"',
                    "when": "never",
                },
                {"if": f'$CI_COMMIT_BRANCH == "{plan.main_branch}"'},
            ]
        },
        "stages": stages,
        "default": {"image": f"python:{plan.python}"},
    }
    if plan.ci.self_hosted:
        data["default"]["tags"] = [plan.ci.runner]
    data.update(_jobs(plan, wd))
    data[user_section("jobs")] = None
    return data


def files(plan: Plan, wd: str) -> dict[str, dict[str, Any]]:
    return {".gitlab-ci.yml": pipeline_file(plan, wd)}


def notes(plan: Plan) -> list[str]:
    found = [n.format(secrets=", ".join(plan.secrets)) for n in NOTES]
    crons = [c for w in plan.workflows for c in w.trigger.crons]
    for name, cron in crons:
        found.append(f'Schedule: "{cron}" on {plan.main_branch} with the variable SHIPYARD_SCHEDULE={name}.')
    return found
