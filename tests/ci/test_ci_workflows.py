"""What the generated workflows say: secrets only as references, a gate rejection that fails
nothing, path filters, release order and triggers, approvals, rollback, schedules, the stages'
commands, and the `shipyard ci` commands the workflows call."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from ci_support import (  # noqa: F401
    EXAMPLE,
    PROVIDERS,
    STAGED,
    check_schema,
    diabetes,
    files_of,
    project_at,
    staged,
    yaml_of,
)

from shipyard.ci.outputs import registered_version, summary_markdown
from shipyard.ci.stages import plan
from shipyard.cli.main import main
from shipyard.config.loader import load_project
from shipyard.errors import ConfigError


def test_no_secret_value_lands_in_theyaml_of(staged, monkeypatch):
    values = {
        "MY_API_TOKEN": "tok-3f9a1c77e2b54d1e",
        "SLACK_WEBHOOK_URL": "https://hooks.example.invalid/T000/B000/XXXXXXXX",
        "SHIPYARD_DATABASE_URI": "postgresql://shipyard:pw-8c1d2e@db.internal/shipyard",
        "SHIPYARD_ARTIFACT_URI": "s3://bucket-7a6b5c/artifacts",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    texts = {p: "".join(files_of(staged, p).values()) for p in PROVIDERS}
    for text in texts.values():
        for value in values.values():
            assert value not in text
        assert "local-token" not in text and "LOCAL_ONLY" not in text  # keyring: cannot come from CI
    for name in values:
        assert f"{name}: ${{{{ secrets.{name} }}}}" in texts["github"]
        assert f"{name}: $({name})" in texts["azure"]
        assert name in texts["gitlab"]
    assert "- group: shipyard" in texts["azure"]
    # PR checks run branch code: no workspace secrets there.
    pr = yaml_of(staged, "github")["diabetes-pr"]
    assert "env" not in pr["jobs"]["checks"]


def test_a_rejected_gate_cannot_fail_the_train_workflow(staged, tmp_path):
    for provider in PROVIDERS:
        assert "--fail-on-reject" not in "".join(files_of(staged, provider).values())
    train = yaml_of(staged, "github")["diabetes-train"]["jobs"]["train"]
    runs = [s.get("run", "") for s in train["steps"]]
    assert "shipyard run --until register --outputs shipyard-outputs" in runs
    publish = next(s for s in train["steps"] if s["id"] == "publish")
    assert publish["if"] == "steps.registered.outputs.version != ''"
    assert publish["with"]["path"].split() == [
        "diabetes/shipyard-outputs/run.json",
        "diabetes/shipyard-outputs/model.json",
    ]
    summary = next(s for s in train["steps"] if s["id"] == "summary")
    assert summary["if"] == "always()" and "$GITHUB_STEP_SUMMARY" in summary["run"]
    # What `shipyard ci version` says for a rejected run, an existing version and a new one.
    out = tmp_path / "outputs"
    out.mkdir()
    run = {
        "status": "rejected",
        "gate": {
            "verdict": "rejected",
            "reason": "mse 5350 > threshold 4000",
            "metric": "mse",
            "direction": "lower",
            "candidate_value": 5350.0,
            "champion_version": None,
        },
    }
    (out / "run.json").write_text(__import__("json").dumps(run))
    assert registered_version(out) is None
    assert "**rejected**" in summary_markdown(out) and "nothing to release" in summary_markdown(out)
    (out / "model.json").write_text('{"name": "diabetes-ridge", "version": "3", "created": false}')
    assert registered_version(out) is None
    (out / "model.json").write_text(
        '{"name": "diabetes-ridge", "version": "4", "created": true, "aliases": ["staging"]}'
    )
    assert registered_version(out) == "4"
    assert "Registered **diabetes-ridge v4**" in summary_markdown(out)


def test_path_filters(diabetes, tmp_path):
    expected = [
        "diabetes/shipyard.yaml",
        "diabetes/train.py",
        "diabetes/schema.py",
        "diabetes/data/diabetes.csv",
        "diabetes/requirements.txt",
    ]
    gh = yaml_of(diabetes, "github")["diabetes-train"]["on"]["push"]
    assert gh == {"branches": ["main"], "paths": expected}
    az = yaml_of(diabetes, "azure")["diabetes-train"]["trigger"]
    assert az["paths"]["include"] == expected and az["branches"]["include"] == ["main"]
    gl = yaml_of(diabetes, "gitlab")[".gitlab-ci"]["train"]["rules"][0]
    assert gl["changes"] == expected and '$CI_PIPELINE_SOURCE == "push"' in gl["if"]
    own = load_project(project_at(tmp_path / "other", "ci: {paths: [src/, train.py], main_branch: trunk}\n"))
    on = yaml_of(own, "github")["diabetes-train"]["on"]["push"]
    assert on == {"branches": ["trunk"], "paths": ["diabetes/src/", "diabetes/train.py"]}


def test_release_order_and_triggers(staged):
    gh = yaml_of(staged, "github")["diabetes-release"]
    assert gh["on"]["workflow_run"]["workflows"] == ["diabetes train"]
    assert gh["on"]["workflow_dispatch"]["inputs"]["version"]["required"] is True
    jobs = gh["jobs"]
    assert list(jobs) == ["resolve", "deploy-dev", "deploy-qa", "deploy-prod", "rollback"]
    assert jobs["deploy-qa"]["needs"] == ["resolve", "deploy-dev"]
    assert jobs["deploy-prod"]["needs"] == ["resolve", "deploy-qa"]
    runs = [[s["run"] for s in jobs[j]["steps"] if "run" in s][1:] for j in ("deploy-dev", "deploy-qa")]
    assert runs == [
        [
            'shipyard env deploy dev --version "$SHIPYARD_MODEL_VERSION" --reason "release by CI"',
            'shipyard ci smoke dev --version "$SHIPYARD_MODEL_VERSION"',
        ],
        [
            'shipyard promote --to qa --version "$SHIPYARD_MODEL_VERSION" --reason "release by CI"',
            'shipyard ci smoke qa --version "$SHIPYARD_MODEL_VERSION"',
        ],
    ]
    az = yaml_of(staged, "azure")["diabetes-release"]
    assert az["resources"]["pipelines"][0] == {
        "pipeline": "train",
        "source": "diabetes-train",
        "trigger": {"branches": {"include": ["main"]}},
    }
    gl = yaml_of(staged, "gitlab")[".gitlab-ci"]
    assert gl["stages"] == ["checks", "train", "release", "rollback", "schedule"]
    assert gl["deploy-qa"]["needs"] == [{"job": "train", "optional": True, "artifacts": True}, "deploy-dev"]
    assert gl["train"]["artifacts"]["reports"]["dotenv"] == "shipyard-release.env"


def test_the_approval_mechanism_of_each_provider(staged):
    gh = yaml_of(staged, "github")["diabetes-release"]["jobs"]
    assert gh["deploy-prod"]["environment"] == "prod" and gh["deploy-dev"]["environment"] == "dev"
    assert gh["deploy-prod"]["env"]["SHIPYARD_ACTOR"] == "${{ github.actor }}"
    promote = [s["run"] for s in gh["deploy-prod"]["steps"] if s.get("id") == "prod"][0]
    assert '--approve --by "$SHIPYARD_ACTOR"' in promote
    assert all("--approve" not in s.get("run", "") for s in gh["deploy-qa"]["steps"])
    az = {
        j.get("deployment") or j.get("job"): j for j in yaml_of(staged, "azure")["diabetes-release"]["jobs"]
    }
    assert az["deploy_prod"]["environment"] == "prod" and "deployment" in az["deploy_prod"]
    assert az["deploy_prod"]["variables"]["SHIPYARD_ACTOR"] == "$(Build.RequestedFor)"
    assert "strategy" in az["deploy_prod"] and "steps" not in az["deploy_prod"]
    gl = yaml_of(staged, "gitlab")[".gitlab-ci"]
    assert gl["deploy-prod"]["environment"] == {"name": "prod"}
    assert {r.get("when") for r in gl["deploy-prod"]["rules"]} == {"manual"}
    assert gl["deploy-prod"]["allow_failure"] is False
    assert all("when" not in r for r in gl["deploy-qa"]["rules"])


def test_the_rollback_job(staged):
    gh = yaml_of(staged, "github")["diabetes-release"]["jobs"]["rollback"]
    assert gh["if"] == "failure() && needs.resolve.outputs.version != ''"
    assert gh["needs"] == ["resolve", "deploy-dev", "deploy-qa", "deploy-prod"]
    steps = {s["id"]: s for s in gh["steps"]}
    assert steps["rollback-prod"] == {
        "name": "Roll prod back",
        "id": "rollback-prod",
        "if": "needs.deploy-prod.result == 'failure'",
        "run": 'shipyard rollback prod --version "$SHIPYARD_MODEL_VERSION"',
    }
    az = {j.get("job"): j for j in yaml_of(staged, "azure")["diabetes-release"]["jobs"]}["rollback"]
    assert az["condition"].startswith("and(failed(),")
    assert az["variables"]["result_deploy_qa"] == "$[ dependencies.deploy_qa.result ]"
    gl = yaml_of(staged, "gitlab")[".gitlab-ci"]["rollback-qa"]
    assert gl["needs"][1] == "deploy-qa" and {r["when"] for r in gl["rules"]} == {"on_failure"}
    assert 'shipyard rollback qa --version "$SHIPYARD_MODEL_VERSION"' in gl["script"]


def test_schedules_come_from_the_config(staged, tmp_path):
    gh = yaml_of(staged, "github")
    assert gh["diabetes-train"]["on"]["schedule"] == [{"cron": "15 4 * * 2"}]
    assert gh["diabetes-schedule"]["on"]["schedule"] == [{"cron": "*/30 * * * *"}]
    assert gh["diabetes-schedule"]["jobs"]["reap"]["steps"][-1]["run"] == "shipyard reap"
    az = yaml_of(staged, "azure")
    assert az["diabetes-train"]["schedules"][0]["cron"] == "15 4 * * 2"
    assert az["diabetes-schedule"]["schedules"][0]["cron"] == "*/30 * * * *"
    gl_text = files_of(staged, "gitlab")[".gitlab-ci.yml"]
    assert '# Schedule: "15 4 * * 2" on main with the variable SHIPYARD_SCHEDULE=retrain.' in gl_text
    gl = yaml.safe_load(gl_text)
    assert {"if": '$CI_PIPELINE_SOURCE == "schedule" && $SHIPYARD_SCHEDULE == "reap"'} in gl["reap"]["rules"]
    off = load_project(project_at(tmp_path / "off", "ci: {retrain_cron: null, reap_cron: null}\n"))
    flows = {w.name for w in plan(off).workflows}
    assert flows == {"pr", "train"}
    assert "schedule" not in yaml_of(off, "github")["diabetes-train"]["on"]


def test_a_bad_cron_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="5-field cron"):
        load_project(project_at(tmp_path / "r", "ci: {retrain_cron: 'every monday'}\n"))


def test_generators_run_the_stages_commands(staged):
    """The run commands of each job are those of stages.py, in its order (one definition)."""
    gh = yaml_of(staged, "github")
    for workflow in plan(staged).workflows:
        for job in workflow.jobs:
            expected = [
                c
                for s in job.stages
                if s.kind in ("run", "install") and not s.output and not s.summary
                for c in s.commands
            ]
            steps = gh[f"diabetes-{workflow.name}"]["jobs"][job.name]["steps"]
            got = [
                line
                for s in steps
                if "run" in s and s["id"] not in ("registered", "summary", "version")
                for line in s["run"].splitlines()
            ]
            assert got == expected


def test_the_cli_writes_files_and_names_a_bad_provider(diabetes, capsys):
    out = diabetes.project_dir.parent
    rc = main(["ci", "generate", "--provider", "gitlab", "-p", str(diabetes.project_dir), "--out", str(out)])
    assert rc == 0 and (out / ".gitlab-ci.yml").is_file()
    assert "no release workflow: add environments" in capsys.readouterr().out
    cmd = [
        sys.executable,
        "-m",
        "shipyard.cli.main",
        "ci",
        "generate",
        "--provider",
        "jenkins",
        "-p",
        str(diabetes.project_dir),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "unknown CI provider 'jenkins': use one of github, azure, gitlab" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_ci_version_and_smoke_through_the_cli(staged, tmp_path, capsys):
    out = tmp_path / "outputs"
    out.mkdir()
    (out / "model.json").write_text('{"name": "diabetes-ridge", "version": "7", "created": true}')
    assert main(["ci", "version", str(out)]) == 0
    assert capsys.readouterr().out == "7\n"
    assert main(["ci", "version", str(tmp_path / "missing")]) == 2
    assert "run `shipyard run --outputs" in capsys.readouterr().err
    # An environment serving nothing fails its smoke test saying what to do; an unknown one: usage error.
    ws = str(tmp_path / "ws")
    assert main(["ci", "smoke", "qa", "--version", "7", "-p", str(staged.project_dir), "-w", ws]) == 1
    assert "qa serves no model: deploy one with `shipyard env deploy qa`" in capsys.readouterr().err
    assert main(["ci", "smoke", "staging", "-p", str(staged.project_dir), "-w", ws]) == 2
    assert "environment 'staging' does not exist" in capsys.readouterr().err


def test_a_private_index_reaches_the_install_steps_only(staged):
    """ci.index: pip's PIP_INDEX_URL from the CI secret, for the install step alone — also in the
    PR checks, which get no other secret — and never the URL itself."""
    gh = yaml_of(staged, "github")
    installing = [j for w in gh.values() for j in w["jobs"].values() if "install" in str(j["steps"])]
    assert len(installing) == 7  # checks, train, dev, qa, prod, rollback, reap
    for job in installing:
        steps = {s["id"]: s for s in job["steps"]}
        assert steps["install"]["env"] == {"PIP_INDEX_URL": "${{ secrets.PRIVATE_INDEX_URL }}"}
        assert all("PIP_INDEX_URL" not in s.get("env", {}) for i, s in steps.items() if i != "install")
    assert "PRIVATE_INDEX_URL" not in gh["diabetes-pr"]["jobs"]["checks"].get("env", {})
    az = yaml_of(staged, "azure")["diabetes-pr"]
    install = next(s for s in az["jobs"][0]["steps"] if s.get("name") == "install")
    assert install["env"] == {"PIP_INDEX_URL": "$(PRIVATE_INDEX_URL)"}
    assert az["variables"] == [{"group": "shipyard"}]  # the PR pipeline links the secret group
    script = yaml_of(staged, "gitlab")[".gitlab-ci"]["checks"]["script"]
    start = script.index('export PIP_INDEX_URL="$PRIVATE_INDEX_URL"')
    assert script[start + 1].startswith("python -m pip install") and "unset PIP_INDEX_URL" in script[start:]
    assert "PRIVATE_INDEX_URL" in "".join(files_of(staged, "github").values())  # named, as a secret


@pytest.mark.parametrize("index", ["https://user:s3cr3t@pkgs.example/simple", "keyring:team/index", "env:"])
def test_an_index_that_is_not_an_env_reference_is_refused_without_echo(tmp_path, index):
    cmd = [sys.executable, "-m", "shipyard.cli.main", "ci", "generate", "-p"]
    folder = project_at(tmp_path / "repo", f"ci:\n  index: {index!r}\n").parent
    result = subprocess.run([*cmd, str(folder)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ci.index: give the index as env:NAME" in result.stderr
    assert "s3cr3t" not in result.stderr + result.stdout and "team/index" not in result.stderr
