"""`shipyard init` (the scaffold) and the local CI runner's rules, without deployments: the layout
and what the files hold, lint passing on the generated code, the CI files being exactly what
`shipyard ci generate` writes, refusing to overwrite (and --force), bad input writing nothing;
`ci run pr` stages in order, stopping at the first failure and at --until, the checks made before
anything runs, and the environment the commands get. The whole chain (pr → train → release →
rollback, behind nginx) is tests/ci/test_ci_chain.py."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from shipyard.ci.local import LocalRunner, Options, run_workflow, select_workflow
from shipyard.ci.requirements import pip_names
from shipyard.cli.main import main
from shipyard.config.loader import load_project
from shipyard.errors import UsageError

LAYOUT = [
    ".github/workflows/shop-pr.yml",
    ".github/workflows/shop-release.yml",
    ".github/workflows/shop-schedule.yml",
    ".github/workflows/shop-train.yml",
    ".gitignore",
    "README.md",
    "model/data/diabetes.csv",
    "model/data/reference_stats.json",
    "model/requirements.txt",
    "model/sample_request.json",
    "model/schema.py",
    "model/score.py",
    "model/train.py",
    "pyproject.toml",
    "shipyard.yaml",
    "tests/test_train.py",
]


def shipyard(*args: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("init") / "shop"
    code, out, err = shipyard("init", folder, "-o", "json")
    assert code == 0, err
    assert json.loads(out)["name"] == "shop"
    return folder


def test_init_writes_the_layout_and_a_loadable_project(project: Path):
    assert files_under(project) == LAYOUT
    config = load_project(project / "shipyard.yaml")
    assert config.name == "shop" and config.registry.model_name == "shop-model"
    envs = config.environments
    assert list(envs) == ["dev", "qa", "prod"] and envs["dev"].ttl == "24h"
    assert (envs["qa"].promotes_from, envs["prod"].promotes_from) == ("dev", "qa")
    assert envs["prod"].requires_approval and not envs["qa"].requires_approval
    assert config.train.script == "model/train.py" and config.deployment.entry_script == "model/score.py"
    for path in (config.train.script, config.deployment.input_sample, config.data_check.reference):
        assert (project / path).is_file()
    pins = (project / "model/requirements.txt").read_text().split()
    assert f"scikit-learn=={version('scikit-learn')}" in pins and f"pandas=={version('pandas')}" in pins
    lines = (project / "model/data/diabetes.csv").read_text().splitlines()
    assert len(lines) == 443 and lines[0].split(",")[-1] == "target"
    stats = json.loads((project / "model/data/reference_stats.json").read_text())
    assert stats["rows"] == 442 and set(stats["columns"]) == set(lines[0].split(","))


def test_generated_code_passes_lint_and_ci_files_are_what_ci_generate_writes(project: Path):
    ruff = Path(sys.executable).with_name("ruff")
    lint = subprocess.run([str(ruff), "check", "."], cwd=project, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
    code, out, err = shipyard("ci", "generate", "--project", project, "-o", "json")
    assert code == 0, err
    assert {r["status"] for r in json.loads(out)} == {"unchanged"}
    release = yaml.safe_load((project / ".github/workflows/shop-release.yml").read_text())
    assert release["jobs"]["deploy-prod"]["environment"] == "prod"


def test_init_refuses_existing_files_and_writes_nothing_unless_forced(tmp_path: Path):
    folder = tmp_path / "proj"
    (folder / "model").mkdir(parents=True)
    (folder / "model/train.py").write_text("# mine\n")
    (folder / "notes.txt").write_text("kept\n")
    code, _, err = shipyard("init", folder)
    assert code == 2
    assert "already has files that init would write:\n  model/train.py\nnothing was written" in err
    assert files_under(folder) == ["model/train.py", "notes.txt"]
    assert (folder / "model/train.py").read_text() == "# mine\n"
    code, out, err = shipyard("init", folder, "--force", "--provider", "gitlab", "-o", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["overwritten"] == ["model/train.py"] and result["ci_files"] == [".gitlab-ci.yml"]
    assert "def fit(" in (folder / "model/train.py").read_text()
    assert (folder / "notes.txt").read_text() == "kept\n"


def test_bad_provider_or_name_is_a_clear_error_and_nothing_is_written(tmp_path: Path):
    code, _, err = shipyard("init", tmp_path / "a", "--provider", "jenkins")
    assert code == 2 and "unknown CI provider 'jenkins': use one of github, azure, gitlab" in err
    code, _, err = shipyard("init", tmp_path / "b", "--name", "Bad Name")
    assert code == 2 and "--name 'Bad Name'" in err
    code, _, err = shipyard("init", tmp_path / "___")
    assert code == 2 and "pass --name NAME" in err
    assert not any(tmp_path.iterdir())


def test_azure_provider_and_a_derived_name(tmp_path: Path):
    code, out, err = shipyard("init", tmp_path / "My_Churn.Model", "--provider", "azure", "-o", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["name"] == "my-churn-model"
    assert result["ci_files"] == [f"azure-pipelines/my-churn-model-{w}.yml"
                                  for w in ("pr", "train", "release", "schedule")]  # fmt: skip
    assert "provider: azure" in (tmp_path / "My_Churn.Model/shipyard.yaml").read_text()


def install_commands(workflow: Path) -> list[str]:
    steps = [s for job in yaml.safe_load(workflow.read_text())["jobs"].values() for s in job["steps"]]
    return [line for s in steps for line in s.get("run", "").splitlines() if "pip install" in line]


def test_ci_files_pin_the_version_that_generated_them(project: Path):
    installs = install_commands(project / ".github/workflows/shop-release.yml")
    assert f"python -m pip install shipyard-mlops=={version('shipyard-mlops')}" in installs
    assert not any(line.endswith(" shipyard") for line in installs)


def test_vendor_wheel_copies_this_shipyards_wheel_and_ci_installs_that_file(tmp_path: Path):
    folder = tmp_path / "shop"
    code, out, err = shipyard("init", folder, "--vendor-wheel", "-o", "json")
    assert code == 0, err
    rel = f"vendor/shipyard_mlops-{version('shipyard-mlops')}-py3-none-any.whl"
    assert rel in json.loads(out)["written"]
    with zipfile.ZipFile(folder / rel) as wheel:
        names = set(wheel.namelist())
        meta = wheel.read(f"shipyard_mlops-{version('shipyard-mlops')}.dist-info/METADATA").decode()
    assert "Name: shipyard-mlops" in meta.splitlines()
    # package data the code reads from its own folder
    assert {"shipyard/py.typed", "shipyard/store/migrations/versions/0001_initial.py"} <= names
    assert load_project(folder / "shipyard.yaml").ci.wheel == rel
    installs = install_commands(folder / ".github/workflows/shop-pr.yml")
    assert f"python -m pip install {rel}" in installs and not any("shipyard-mlops" in i for i in installs)
    code, out, err = shipyard("ci", "generate", "--project", folder, "-o", "json")
    assert code == 0 and {r["status"] for r in json.loads(out)} == {"unchanged"}, err


@pytest.mark.parametrize(
    ("wheel", "message"),
    [("/opt/x.whl", "use a path relative to the project"), ("vendor/x.tar.gz", "is not a wheel file")],
)
def test_ci_wheel_must_be_a_wheel_inside_the_project(project: Path, tmp_path: Path, wheel, message):
    data = yaml.safe_load((project / "shipyard.yaml").read_text())
    data["ci"]["wheel"] = wheel
    (tmp_path / "shipyard.yaml").write_text(yaml.safe_dump(data))
    code, _, err = shipyard("ci", "generate", "--project", tmp_path, "--out", tmp_path / "out")
    assert code == 2 and message in err and "Traceback" not in err, err


def test_ci_run_pr_until_lint_and_a_lint_failure_stops_the_run(project: Path, capsys):
    config = load_project(project / "shipyard.yaml")
    result = run_workflow(config, "pr", Options(until="lint"))
    out = capsys.readouterr().out
    assert result.exit_code == 0 and result.stopped_at == "lint"
    assert out.index("--- checkout") < out.index("--- install") < out.index("==> lint")
    assert "$ ruff check ." in out and "==> test" not in out and "stopped after lint (--until)" in out
    bad = project / "model/extra.py"
    bad.write_text("import os\n")  # F401: unused import
    try:
        result = run_workflow(config, "pr", Options())
    finally:
        bad.unlink()
    out = capsys.readouterr().out
    assert result.exit_code == 1
    assert [(r.stage, r.status) for r in result.results if r.status != "skipped"] == [
        ("lint", "failed"), ("coverage", "passed")  # the report is published `always`, as in CI
    ]  # fmt: skip
    assert "F401" in out and "--- test: Unit tests with coverage — skipped (an earlier stage failed)" in out
    assert "ci run pr: failed at checks/lint" in out


def test_ci_run_checks_before_anything_runs(project: Path, tmp_path: Path):
    config = load_project(project / "shipyard.yaml")
    with pytest.raises(UsageError, match="workflow 'deploy': use one of pr, train, release, schedule"):
        select_workflow(config, "deploy")
    with pytest.raises(UsageError, match=r"--until 'lnt': .* are checks, checkout, python, install, lint"):
        run_workflow(config, "pr", Options(until="lnt"))
    with pytest.raises(UsageError, match="prod requires approval and there is no terminal.*--approve"):
        run_workflow(config, "release", Options(version="1"))
    data = yaml.safe_load((project / "shipyard.yaml").read_text())
    data["ci"]["install"] = ["python -m pip install shipyard-mlops surely-not-installed-here"]
    (tmp_path / "shipyard.yaml").write_text(yaml.safe_dump(data))
    other = load_project(tmp_path / "shipyard.yaml")
    with pytest.raises(UsageError, match="installs surely-not-installed-here, which this Python"):
        run_workflow(other, "train", Options())
    del data["environments"]
    (tmp_path / "shipyard.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(UsageError, match="no release workflow: add environments"):
        run_workflow(load_project(tmp_path / "shipyard.yaml"), "release", Options())


def testpip_names():
    assert pip_names("python -m pip install --upgrade pip") == ["pip"]
    assert pip_names("python -m pip install ruff pytest-cov[toml] x==1 -r model/requirements.txt") == [
        "ruff", "pytest-cov", "x"
    ]  # fmt: skip
    assert pip_names("ruff check .") == []
    # paths, URLs, wheels and -r files are not names; ~= is a specifier, not part of the name
    assert pip_names("python -m pip install ./shipyard . dist/x.whl -r requirements.txt") == []
    assert pip_names("python -m pip install -i https://mirror/simple ruff~=0.5 'scikit-learn[all]>=1'") == [
        "ruff",
        "scikit-learn",
    ]


def test_commands_get_this_python_the_workspace_and_ci_variables(project: Path, monkeypatch):
    monkeypatch.setenv("SHIPYARD_DATABASE_URI", "sqlite:////tmp/shared.db")
    config = load_project(project / "shipyard.yaml")
    options = Options(workspace="ws", actor="alice")
    pr = select_workflow(config, "pr")
    env = LocalRunner(config, pr, options)._env(pr.jobs[0])
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert env["SHIPYARD_WORKSPACE"] == str(Path("ws").resolve())
    assert "SHIPYARD_DATABASE_URI" not in env  # PR checks get no workspace secrets, as in CI
    release = select_workflow(config, "release")
    runner = LocalRunner(config, release, options)
    runner.version = "7"
    prod = next(j for j in release.jobs if j.name == "deploy-prod")
    env = runner._env(prod)
    assert (env["SHIPYARD_MODEL_VERSION"], env["SHIPYARD_ACTOR"]) == ("7", "alice")
    assert env["SHIPYARD_DATABASE_URI"] == "sqlite:////tmp/shared.db"
