"""train.sweep: the trials it generates, its validation, how the best trial is chosen, its part of
the cache key, and `run_many` (real local processes) that runs the trials."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import yaml
from compute_support import step_job

from shipyard.compute import parallel
from shipyard.compute.base import StepJob
from shipyard.compute.local import LocalTarget
from shipyard.config.loader import load_project, resolve_workspace_settings
from shipyard.config.sweep import SweepConfig
from shipyard.errors import ConfigError, StepFailed
from shipyard.pipeline.context import StepContext
from shipyard.pipeline.steps import TrainStep
from shipyard.pipeline.sweep import Trial, best_trial
from shipyard.workspace import Workspace

EXAMPLE = Path(__file__).parents[2] / "examples" / "diabetes"


def sweep(**fields) -> SweepConfig:
    return SweepConfig.model_validate(fields)


# -- trials --------------------------------------------------------------------------------------


def test_grid_is_every_combination_in_the_order_written():
    trials = sweep(method="grid", parameters={"alpha": [0.1, 1.0], "solver": ["svd", "lsqr", "auto"]})
    assert trials.trial_parameters() == [
        {"alpha": 0.1, "solver": "svd"},
        {"alpha": 0.1, "solver": "lsqr"},
        {"alpha": 0.1, "solver": "auto"},
        {"alpha": 1.0, "solver": "svd"},
        {"alpha": 1.0, "solver": "lsqr"},
        {"alpha": 1.0, "solver": "auto"},
    ]


def test_random_draws_are_reproducible_from_the_seed_and_stay_in_range():
    spec = {
        "method": "random",
        "parameters": {
            "alpha": {"min": 0.001, "max": 10, "log": True},
            "depth": {"min": 2, "max": 6, "type": "int"},
            "leaves": {"min": 1, "max": 1000, "type": "int", "log": True},
            "rate": {"min": -1, "max": 1},
            "solver": ["svd", "lsqr"],
        },
        "trials": 200,
        "seed": 3,
    }
    first = SweepConfig.model_validate(spec).trial_parameters()
    assert first == SweepConfig.model_validate(spec).trial_parameters()
    assert first != SweepConfig.model_validate({**spec, "seed": 4}).trial_parameters()
    assert len(first) == 200
    assert all(0.001 <= t["alpha"] <= 10 for t in first)
    assert {t["depth"] for t in first} == {2, 3, 4, 5, 6}  # inclusive bounds, whole numbers
    assert all(isinstance(t["leaves"], int) and 1 <= t["leaves"] <= 1000 for t in first)
    assert all(-1 <= t["rate"] <= 1 for t in first)
    assert {t["solver"] for t in first} == {"svd", "lsqr"}
    # log-uniform: about a third of the draws in each decade of [0.001, 10) has ~1/4 of them
    below_01 = sum(t["alpha"] < 0.01 for t in first) / len(first)
    assert 0.12 < below_01 < 0.38, below_01


def test_the_draws_do_not_depend_on_the_process(tmp_path):
    """Same seed, another interpreter: the same values (what makes Ray and local agree)."""
    import subprocess
    import sys

    code = (
        "from shipyard.config.sweep import SweepConfig\n"
        "print(SweepConfig.model_validate({'method': 'random', 'trials': 3, 'seed': 11,"
        " 'parameters': {'a': {'min': 0.5, 'max': 2.0}}}).trial_parameters())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    here = sweep(method="random", trials=3, seed=11, parameters={"a": {"min": 0.5, "max": 2.0}})
    assert out.strip() == str(here.trial_parameters())


# -- validation ----------------------------------------------------------------------------------


def write_project(tmp_path: Path, sweep_block: object) -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".shipyard", "outputs", "__pycache__"))
    cfg = dest / "shipyard.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["train"]["sweep"] = sweep_block
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    return cfg


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"method": "grid", "parameters": {"alpha": {"min": 0.1, "max": 1}}}, "grid needs a list of values"),
        ({"method": "random", "parameters": {"alpha": [0.1, 1]}}, "random needs trials"),
        ({"method": "grid", "parameters": {"alpha": [0.1]}, "trials": 3}, "trials applies to method: random"),
        ({"method": "grid", "parameters": {"a": list(range(40)), "b": list(range(30))}}, "1200 combinations"),
        ({"method": "grid", "parameters": {}}, "at least one parameter"),
        ({"method": "grid", "parameters": {"alpha": []}}, "alpha: the list of values is empty"),
        ({"method": "grid", "parameters": {"alpha": 0.5}}, "alpha: give a list of values"),
        (
            {"method": "grid", "parameters": {"alpha": [[1, 2]]}},
            "values must be numbers, strings or booleans",
        ),
        ({"method": "random", "trials": 2, "parameters": {"a": {"min": 2, "max": 1}}}, "must be below max"),
        (
            {"method": "random", "trials": 2, "parameters": {"a": {"min": 0, "max": 1, "log": True}}},
            "min > 0",
        ),
        (
            {"method": "random", "trials": 2, "parameters": {"a": {"min": 0.5, "max": 3, "type": "int"}}},
            "whole-number",
        ),
        (
            {"method": "random", "trials": 2, "parameters": {"a": {"min": 0, "maxx": 1}}},
            "maxx: unknown field",
        ),
        ({"method": "bayes", "parameters": {"a": [1]}}, "train.sweep.method"),
        ({"method": "grid", "parameters": {"a": [1]}, "max_parallel": 0}, "train.sweep.max_parallel"),
        ({"method": "grid", "parameters": {"a": [1]}, "parallel": 2}, "train.sweep.parallel: unknown field"),
    ],
)
def test_bad_sweep_blocks_are_config_errors_that_say_what_to_change(tmp_path, block, message):
    with pytest.raises(ConfigError) as err:
        load_project(write_project(tmp_path, block))
    assert message in str(err.value)


# -- the best trial ------------------------------------------------------------------------------


def trials(*rows: tuple[str, float | None]) -> list[Trial]:
    return [Trial(i, {"i": i}, Path(f"t{i}.log"), f"run{i}", status, m) for i, (status, m) in enumerate(rows)]


def test_best_trial_follows_the_gate_direction():
    ts = trials(("FINISHED", 3.0), ("FINISHED", 1.0), ("FINISHED", 2.0))
    assert best_trial(ts, "lower").index == 1
    assert best_trial(ts, "higher").index == 0


def test_ties_go_to_the_lowest_index():
    ts = trials(("FINISHED", 2.0), ("FINISHED", 1.0), ("FINISHED", 1.0), ("FINISHED", 1.0))
    assert best_trial(ts, "lower").index == 1
    assert best_trial(list(reversed(ts)), "lower").index == 1


def test_failed_trials_and_trials_without_the_metric_cannot_be_best():
    ts = trials(("FAILED", None), ("FINISHED", None), ("KILLED", None), ("FINISHED", 9.0))
    assert best_trial(ts, "lower").index == 3
    assert best_trial(ts[:3], "lower") is None
    # a FAILED trial never wins even if it had logged a better value before failing
    assert best_trial(trials(("FAILED", 0.1), ("FINISHED", 5.0)), "lower").index == 1


# -- cache key -----------------------------------------------------------------------------------


def train_key(tmp_path: Path, sweep_block: object | None) -> str:
    cfg_path = write_project(tmp_path, sweep_block)
    if sweep_block is None:  # no sweep key at all
        data = yaml.safe_load(cfg_path.read_text())
        del data["train"]["sweep"]
        cfg_path.write_text(yaml.safe_dump(data, sort_keys=False))
    cfg = load_project(cfg_path)
    ws = Workspace.get_or_create(resolve_workspace_settings(cfg, env={}))
    ctx = StepContext(ws=ws, config=cfg, pipeline_run_id="x" * 32, params=dict(cfg.train.parameters))
    key = TrainStep().cache_key(ctx)
    shutil.rmtree(cfg_path.parent)
    assert key is not None
    return key


def test_the_sweep_block_is_part_of_the_train_key_only_when_set(tmp_path):
    grid = {"method": "grid", "parameters": {"alpha": [0.1, 1.0]}}
    plain = train_key(tmp_path, None)
    assert train_key(tmp_path, None) == plain
    with_grid = train_key(tmp_path, grid)
    assert with_grid != plain
    assert train_key(tmp_path, grid) == with_grid
    assert train_key(tmp_path, {"method": "grid", "parameters": {"alpha": [0.1, 2.0]}}) != with_grid
    assert train_key(tmp_path, {**grid, "max_parallel": 2}) == with_grid  # how fast, not what
    random = {"method": "random", "trials": 3, "parameters": {"alpha": {"min": 0.1, "max": 1}}}
    assert train_key(tmp_path, {**random, "seed": 1}) != train_key(tmp_path, {**random, "seed": 2})


# -- run_many --------------------------------------------------------------------------------------

STAMPED = """
import os, sys, time
print("start", time.time(), flush=True)
time.sleep(float(os.environ.get("SLEEP", "0.6")))
print("end", time.time(), flush=True)
sys.exit(int(os.environ.get("EXIT", "0")))
"""


def jobs(tmp_path: Path, n: int, **env_of: dict[str, str]) -> list[StepJob]:
    return [
        step_job(tmp_path, STAMPED, name=f"job{i}", env=env_of.get(f"job{i}", {}), timeout_s=30)
        for i in range(n)
    ]


def stamps(job: StepJob) -> tuple[float, float]:
    values = dict(line.split() for line in job.log_path.read_text().splitlines())
    return float(values["start"]), float(values["end"])


def test_run_many_runs_local_jobs_one_after_another_and_returns_them_in_order(tmp_path):
    js = jobs(tmp_path, 3, job1={"EXIT": "3"})
    seen: list[tuple[str, int]] = []
    results = parallel.run_many(
        LocalTarget(),
        js,
        max_parallel=3,
        prepare=lambda i, job: seen.append(("start", i)) or job,
        finished=lambda i, result: seen.append(("end", i)),
    )
    assert [r.status for r in results] == ["succeeded", "failed", "succeeded"]
    assert results[1].exit_code == 3  # a failed job is a result, not an exception
    assert seen == [("start", 0), ("end", 0), ("start", 1), ("end", 1), ("start", 2), ("end", 2)]
    times = [stamps(j) for j in js]
    assert times[0][1] <= times[1][0] and times[1][1] <= times[2][0]


def test_run_many_runs_side_by_side_on_parallel_targets(tmp_path, monkeypatch):
    # The Ray target is exercised in tests/pipeline/test_sweep_pipeline.py; here the scheduling logic with
    # real local processes, the local target counted as one that runs jobs side by side.
    monkeypatch.setattr(parallel, "PARALLEL_TARGETS", frozenset({"local"}))
    js = jobs(tmp_path, 3)
    results = parallel.run_many(LocalTarget(), js, max_parallel=2)
    assert [r.status for r in results] == ["succeeded"] * 3
    (s0, e0), (s1, e1), (s2, _) = (stamps(j) for j in js)
    assert s1 < e0 and s0 < e1  # the first two overlapped
    assert s2 >= min(e0, e1) - 0.05  # the third waited for a free slot


def test_a_job_past_its_timeout_is_stopped_and_reported_failed(tmp_path):
    js = [step_job(tmp_path, STAMPED, name="slow", env={"SLEEP": "60"}, timeout_s=1.0)]
    started = time.monotonic()
    (result,) = parallel.run_many(LocalTarget(grace_s=1), js)
    assert time.monotonic() - started < 15
    assert result.status == "failed" and result.exit_code is None
    assert "ran longer than timeout_s=1s" in result.message and "start" in result.log_tail


def test_an_error_cancels_every_running_job(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, "PARALLEL_TARGETS", frozenset({"local"}))
    js = jobs(tmp_path, 3, job0={"SLEEP": "0.2"}, job1={"SLEEP": "60"})
    target = LocalTarget(grace_s=1)
    ended: dict[int, str] = {}

    def prepare(i: int, job: StepJob) -> StepJob:
        if i == 2:
            raise KeyboardInterrupt  # Ctrl-C once job 0 is done, while job 1 runs
        return job

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        parallel.run_many(
            target, js, max_parallel=2, prepare=prepare, finished=lambda i, r: ended.update({i: r.status})
        )
    assert time.monotonic() - started < 20
    assert ended == {0: "succeeded", 1: "cancelled"}
    assert "end" not in js[1].log_path.read_text()
    assert all(p.proc.poll() is not None for p in target._jobs.values())  # no process left


def test_a_job_the_target_refuses_is_finished_as_failed_and_stops_the_rest(tmp_path):
    js = jobs(tmp_path, 2)
    missing = StepJob(**{**js[0].__dict__, "script": "missing.py"})
    ended: dict[int, str | None] = {}
    with pytest.raises(StepFailed, match="does not exist"):
        parallel.run_many(LocalTarget(), [missing, js[1]], finished=lambda i, r: ended.update({i: r.message}))
    assert list(ended) == [0] and "not submitted" in (ended[0] or "")
    assert not js[1].log_path.exists()  # never started
