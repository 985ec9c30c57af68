"""train.sweep through `shipyard run` on the diabetes example: each trial a child run of the train
run with its own parameters and metrics, the best by the gate's metric registered, the same trials
and values on `local` (one after another) and on a real 2-CPU Ray cluster (side by side).

Expected values come from an independent fit (reference_model) and a plain MLflow client, not
from what Shipyard reports about itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

SWEEP = {
    "method": "random",
    "parameters": {"alpha": {"min": 0.001, "max": 30.0, "log": True}},
    "trials": 3,
    "seed": 7,
}
STAMP = re.compile(r"sweep-test (start|end) ([0-9.]+)")


@dataclass
class SweepRun:
    summary: dict[str, Any]
    client: Any
    ws: Path
    parent: Any  # the train run (the sweep's parent)
    trials: list[Any]  # its child runs, by trial index

    def log_stamps(self, index: int) -> dict[str, float]:
        """When trial `index`'s script started and ended, as the script itself printed it."""
        log = next(self.ws.rglob(f"train-trial-{index}.log")).read_text()
        return {kind: float(value) for kind, value in STAMP.findall(log)}


def make_project(
    dest: Path, copy_project, model: str, sweep: dict, *, compute: str = "local", data_check: bool = True
) -> Path:
    project = copy_project(dest, deployment=False)
    cfg = project / "shipyard.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["train"].update(sweep=sweep, compute=compute)
    if not data_check:
        data["train"]["inputs"] = {"data": data.pop("data_check")["path"]}
    data["train"].pop("environment", None)  # a Ray job would pip-install it: not what this tests
    data["registry"]["model_name"] = model
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    train = project / "train.py"
    stamp = "print(f\"sweep-test {} {{__import__('time').time():.3f}}\", flush=True)\n"
    train.write_text(stamp.format("start") + train.read_text() + stamp.format("end"))
    return project


def run_sweep(cli, mlflow_client, project: Path, ws: Path) -> SweepRun:
    res = cli("run", "--project", project, "--workspace", ws, "--output", "json")
    assert res.code == 0, f"exit {res.code}\n{res.out}\n{res.err}"
    summary = res.json()
    assert summary["status"] == "succeeded", summary
    client = mlflow_client(ws)
    best = client.get_run(summary["run"]["run_id"])
    parent = client.get_run(best.data.tags["mlflow.parentRunId"])
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    children.sort(key=lambda r: int(r.data.tags["shipyard.sweep_trial"]))
    return SweepRun(summary, client, ws, parent, children)


def expected_trials(sweep: dict) -> list[dict]:
    from shipyard.config.sweep import SweepConfig

    return SweepConfig.model_validate(sweep).trial_parameters()


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory, copy_project, cli, mlflow_client) -> SweepRun:
    root = tmp_path_factory.mktemp("sweep-local")
    project = make_project(root / "project", copy_project, "sweep-local", SWEEP)
    return run_sweep(cli, mlflow_client, project, root / "ws")


def test_local_sweep_trials_are_child_runs_and_the_best_is_registered(local_sweep, reference_model):
    s = local_sweep
    assert [r.data.tags["shipyard.sweep_trial"] for r in s.trials] == ["0", "1", "2"]
    alphas = [float(r.data.params["alpha"]) for r in s.trials]
    assert len(set(alphas)) == 3 and all(0.001 <= a <= 30.0 for a in alphas)
    assert alphas == [t["alpha"] for t in expected_trials(SWEEP)]  # drawn from the seed, in order
    for run, alpha in zip(s.trials, alphas, strict=True):
        assert run.info.status == "FINISHED"
        assert run.data.tags["shipyard.step"] == "train"
        assert run.data.params["test_size"] == "0.2"  # the script's other parameters are kept
        assert run.data.metrics["mse"] == pytest.approx(reference_model(alpha)[0], rel=1e-9)
    best = min(range(3), key=lambda i: s.trials[i].data.metrics["mse"])
    best_run = s.trials[best]
    assert s.summary["run"]["run_id"] == best_run.info.run_id
    assert s.summary["gate"]["candidate_value"] == pytest.approx(best_run.data.metrics["mse"])
    assert s.parent.data.tags["shipyard.sweep.best_run_id"] == best_run.info.run_id
    assert s.parent.data.metrics["best_mse"] == pytest.approx(best_run.data.metrics["mse"])
    assert "alpha" not in s.parent.data.params  # swept: each trial has its own
    version = s.client.get_model_version_by_alias("sweep-local", "staging")
    assert version.run_id == best_run.info.run_id
    # local runs one trial after the other: each child run ends before the next one starts
    for i in range(2):
        assert s.trials[i].info.end_time <= s.trials[i + 1].info.start_time
        assert s.log_stamps(i)["end"] <= s.log_stamps(i + 1)["start"]


def test_a_second_run_reuses_the_sweep_from_the_cache(local_sweep, cli):
    project = local_sweep.ws.parent / "project"
    res = cli("run", "--project", project, "--workspace", local_sweep.ws, "--output", "json")
    assert res.code == 0, res.err
    steps = {s["step"]: s["status"] for s in res.json()["steps"]}
    assert steps["train"] == "cached"
    assert res.json()["run"]["run_id"] == local_sweep.summary["run"]["run_id"]


def test_the_same_sweep_on_ray_tries_the_same_values_side_by_side(
    local_sweep,
    ray_cluster,  # noqa: F811
    tmp_path,
    copy_project,
    cli,
    mlflow_client,
):
    sweep = {**SWEEP, "max_parallel": 2}
    project = make_project(tmp_path / "project", copy_project, "sweep-ray", sweep, compute=ray_cluster.name)
    s = run_sweep(cli, mlflow_client, project, Path(ray_cluster.ws.root))
    assert {r.data.tags["shipyard.compute"] for r in s.trials} == {ray_cluster.name}
    assert [r.data.params["alpha"] for r in s.trials] == [r.data.params["alpha"] for r in local_sweep.trials]
    assert [r.data.metrics["mse"] for r in s.trials] == pytest.approx(
        [r.data.metrics["mse"] for r in local_sweep.trials], rel=1e-12
    )
    best = s.trials.index(next(r for r in s.trials if r.info.run_id == s.summary["run"]["run_id"]))
    local_best = next(
        i for i, r in enumerate(local_sweep.trials) if r.info.run_id == local_sweep.summary["run"]["run_id"]
    )
    assert best == local_best
    assert s.client.get_model_version_by_alias("sweep-ray", "staging").run_id == s.trials[best].info.run_id
    # Trials 0 and 1 ran at the same time: their child runs overlap, and so do the scripts.
    first, second = s.trials[0].info, s.trials[1].info
    assert second.start_time < first.end_time and first.start_time < second.end_time
    a, b = s.log_stamps(0), s.log_stamps(1)
    assert b["start"] < a["end"] and a["start"] < b["end"], (a, b)


def test_failed_trials_are_reported_and_all_failing_fails_the_step(
    tmp_path, copy_project, cli, mlflow_client
):
    sweep = {"method": "grid", "parameters": {"alpha": [0.1, 500.0, 1.0]}}
    project = make_project(tmp_path / "project", copy_project, "sweep-fail", sweep, data_check=False)
    train = project / "train.py"
    train.write_text(
        train.read_text().replace(
            "        df = pd.read_csv(",
            '        if params["alpha"] > 100:\n'
            "            raise SystemExit(f\"alpha {params['alpha']} is too large\")\n"
            "        df = pd.read_csv(",
        )
    )
    ws = tmp_path / "ws"
    s = run_sweep(cli, mlflow_client, project, ws)
    assert [r.info.status for r in s.trials] == ["FINISHED", "FAILED", "FINISHED"]
    finished = [r for r in s.trials if r.info.status == "FINISHED"]
    best = min(finished, key=lambda r: r.data.metrics["mse"])
    assert s.summary["run"]["run_id"] == best.info.run_id and best.data.params["alpha"] == "0.1"
    table = json.loads(
        Path(s.client.download_artifacts(s.parent.info.run_id, "sweep.json", tmp_path)).read_text()
    )
    failed = table["trials"][1]
    assert failed["status"] == "FAILED" and failed["metric"] is None
    assert "alpha 500.0 is too large" in failed["message"] and "exited with code 1" in failed["message"]
    assert table["best"] == 0

    data = yaml.safe_load((project / "shipyard.yaml").read_text())
    data["train"]["sweep"]["parameters"]["alpha"] = [200.0, 300.0]
    (project / "shipyard.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    res = cli("run", "--project", project, "--workspace", ws, "--output", "json")
    assert res.code != 0
    assert res.json()["status"] == "failed"
    error = res.json()["error"]
    assert "all 2 sweep trials failed" in error and "alpha 200.0 is too large" in error, error
