"""`train.compute: venv` through `shipyard run`: the training script runs in an isolated
environment built from train.environment (with uv, a dev dependency), logs to the same workspace,
and a second run reuses both the environment and the step cache."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.integration


def test_training_runs_in_the_venv_built_from_its_spec(tmp_path, copy_project, shipyard_proc):
    project = copy_project(tmp_path / "project", deployment=False)
    cfg = project / "shipyard.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["train"].update(compute="venv", environment="requirements.txt")
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    train = project / "train.py"
    train.write_text("import sys\nprint('python:', sys.prefix)\n" + train.read_text())
    ws = project / ".shipyard"

    first = shipyard_proc("run", "--workspace", ws, "--output", "json", cwd=project, timeout=600)
    assert first.code == 0, first.err[-3000:]
    summary = json.loads(first.out)
    assert summary["status"] == "succeeded", summary
    envs = [p for p in (ws / "envs").iterdir() if p.is_dir()]
    assert len(envs) == 1, envs
    log = next(ws.rglob("train.log")).read_text()
    assert f"python: {envs[0]}" in log  # not Shipyard's own interpreter

    again = shipyard_proc("run", "--workspace", ws, "--output", "json", cwd=project, timeout=600)
    assert again.code == 0, again.err[-3000:]
    steps = {s["step"]: s["status"] for s in json.loads(again.out)["steps"]}
    assert steps["train"] == "cached" and len(list((ws / "envs").iterdir())) == 1


def test_venv_without_an_environment_spec_is_a_clear_config_error(tmp_path, copy_project, shipyard_proc):
    project = copy_project(tmp_path / "project", deployment=False)
    cfg = project / "shipyard.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["train"]["compute"] = "venv"
    data["train"].pop("environment", None)
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    res = shipyard_proc("run", "--workspace", project / ".shipyard", cwd=project)
    assert res.code == 2 and "train.environment" in res.err and "Traceback" not in res.err
