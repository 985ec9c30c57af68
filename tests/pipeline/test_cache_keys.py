"""Step cache keys: content hashes of code, parameters, inputs and environment."""

import shutil
from pathlib import Path

import pytest

from shipyard.config.loader import load_project, resolve_workspace_settings
from shipyard.pipeline.context import StepContext
from shipyard.pipeline.steps import DataCheckStep, TrainStep
from shipyard.workspace import Workspace

EXAMPLE = Path(__file__).parents[2] / "examples" / "diabetes"


@pytest.fixture()
def project(tmp_path):
    dest = tmp_path / "proj"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".shipyard", "outputs", "__pycache__"))
    return dest


def ctx_for(project: Path, params=None) -> StepContext:
    cfg = load_project(project / "shipyard.yaml")
    ws = Workspace.get_or_create(resolve_workspace_settings(cfg, env={}))
    return StepContext(
        ws=ws, config=cfg, pipeline_run_id="x" * 32, params=params or dict(cfg.train.parameters)
    )


def test_train_key_is_stable_for_the_same_content(project):
    assert TrainStep().cache_key(ctx_for(project)) == TrainStep().cache_key(ctx_for(project))


@pytest.mark.parametrize(
    "change",
    [
        lambda p: (p / "train.py").write_text((p / "train.py").read_text() + "\n# changed\n"),
        lambda p: (p / "schema.py").write_text((p / "schema.py").read_text() + "\n# extra code file\n"),
        lambda p: (p / "data" / "diabetes.csv").write_text((p / "data" / "diabetes.csv").read_text()[:-50]),
        lambda p: (p / "requirements.txt").write_text("scikit-learn==0.0\n"),
    ],
    ids=["script", "code-file", "input-data", "environment"],
)
def test_train_key_changes_with_content(project, change):
    before = TrainStep().cache_key(ctx_for(project))
    change(project)
    assert TrainStep().cache_key(ctx_for(project)) != before


def test_train_key_changes_with_parameters_not_with_mtime(project):
    base = TrainStep().cache_key(ctx_for(project, {"alpha": 0.5}))
    assert TrainStep().cache_key(ctx_for(project, {"alpha": 0.6})) != base
    (project / "train.py").touch()
    assert TrainStep().cache_key(ctx_for(project, {"alpha": 0.5})) == base


def test_data_check_key_follows_reference_and_tolerance(project):
    before = DataCheckStep().cache_key(ctx_for(project))
    ref = project / "data" / "reference_stats.json"
    ref.write_text(ref.read_text().replace('"rows"', '"rows_"'))
    assert DataCheckStep().cache_key(ctx_for(project)) != before


def test_git_commit_of_the_project(project):
    import subprocess

    from tools import require_tool

    git = require_tool("git", "git")
    assert ctx_for(project).git_commit is None  # not a repository yet
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run([git, *cmd], cwd=project, check=True, env={**env, "PATH": "/usr/bin:/bin"})
    head = subprocess.run(
        [git, "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True
    ).stdout.strip()
    assert ctx_for(project).git_commit == head and len(head) == 40
