"""Six `shipyard run` processes at once on one workspace, each with its own alpha.

Whatever order they reach the gate in, the registry must come out consistent: versions 1..N
without gaps or duplicates, one production version (the best registered one), an alias history
where every move starts where the previous one ended, and a version for every passed gate. No lock
serialises the gate: production moves by compare-and-set, and a run that lost a race decides again.
"""

from __future__ import annotations

import json
import subprocess

import pytest

pytestmark = pytest.mark.integration

MODEL = "diabetes-ridge"
# Distinct test-set mse on the example's split, all under the gate's threshold (4000):
# 1.0 → 3077, 0.5 → 2917, 0.3 → 2868, 0.1 → 2856 (best), 0.05 → 2866, 0.01 → 2882.
ALPHAS = ["1.0", "0.5", "0.3", "0.1", "0.05", "0.01"]


@pytest.fixture(scope="module")
def parallel_runs(tmp_path_factory, copy_project, shipyard_bin):
    root = tmp_path_factory.mktemp("concurrency")
    proj = copy_project(root / "project", deployment=False)
    ws = root / "ws"
    # Open the workspace once first: parallel first use of a fresh one is a known bug (see below).
    warm = subprocess.run(
        [str(shipyard_bin), "models", "list", "--workspace", str(ws)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert warm.returncode == 0, warm.stderr
    procs = [
        subprocess.Popen(
            [
                str(shipyard_bin),
                "run",
                "--workspace",
                str(ws),
                "--param",
                f"alpha={alpha}",
                "--output",
                "json",
            ],
            cwd=proj,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for alpha in ALPHAS
    ]
    results = []
    try:
        for alpha, proc in zip(ALPHAS, procs, strict=True):
            out, err = proc.communicate(timeout=240)
            results.append({"alpha": alpha, "code": proc.returncode, "out": out, "err": err})
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return ws, results


@pytest.fixture(scope="module")
def summaries(parallel_runs):
    _, results = parallel_runs
    for r in results:
        assert r["code"] == 0, f"alpha={r['alpha']} exited {r['code']}:\n{r['err']}"
    return {r["alpha"]: json.loads(r["out"]) for r in results}


def test_every_run_finishes_and_is_either_registered_or_rejected(summaries, reference_model):
    for alpha, s in summaries.items():
        assert s["status"] in ("succeeded", "rejected"), (alpha, s["error"])
        assert s["error"] is None
        assert [x["step"] for x in s["steps"]] == ["data_check", "train", "evaluate", "register"]
        assert s["run"]["metrics"]["mse"] == pytest.approx(reference_model(float(alpha))[0], rel=1e-9)
        if s["status"] == "succeeded":
            assert s["gate"]["verdict"] == "passed" and s["model"]["created"] is True
        else:
            # Not registered, unless production moved between its re-check and its move (then it
            # stays registered without the alias).
            assert s["gate"]["verdict"] == "rejected"
            assert "model" not in s or s["gate"]["reason"].startswith("re-evaluated")
            # Rejected only by a champion at least as good as itself.
            assert s["gate"]["champion_value"] <= s["gate"]["candidate_value"]
    # The first to reach the gate always passes, so at least one run registered.
    assert any(s["status"] == "succeeded" for s in summaries.values())


def test_versions_are_unique_and_consecutive(parallel_runs, summaries, mlflow_client):
    ws, _ = parallel_runs
    accepted = [s for s in summaries.values() if "model" in s]
    client = mlflow_client(ws)
    versions = client.search_model_versions(f"name = '{MODEL}'")
    numbers = sorted(int(v.version) for v in versions)
    assert numbers == list(range(1, len(accepted) + 1))
    assert sorted(int(s["model"]["version"]) for s in accepted) == numbers
    # Each version holds the model of the run that reported it.
    by_version = {str(v.version): v.run_id for v in versions}
    assert {s["model"]["version"]: s["run"]["run_id"] for s in accepted} == by_version


def test_production_is_the_best_registered_version(parallel_runs, summaries, mlflow_client):
    ws, _ = parallel_runs
    client = mlflow_client(ws)
    model = client.get_registered_model(MODEL)
    aliases = {k: str(v) for k, v in model.aliases.items()}
    assert set(aliases) == {"production", "staging"}
    mse_by_version = {
        str(v.version): client.get_run(v.run_id).data.metrics["mse"]
        for v in client.search_model_versions(f"name = '{MODEL}'")
    }
    best = min(mse_by_version, key=mse_by_version.get)
    assert aliases["production"] == best
    # The best candidate of all beats any champion, so it is always the one in production.
    best_overall = min(summaries.values(), key=lambda s: s["run"]["metrics"]["mse"])
    assert best_overall["model"]["version"] == best
    assert aliases["staging"] == str(len(mse_by_version))  # the latest registration


def test_alias_history_is_a_chain_that_only_improves(parallel_runs, query, mlflow_client):
    ws, _ = parallel_runs
    client = mlflow_client(ws)
    mse = {
        str(v.version): client.get_run(v.run_id).data.metrics["mse"]
        for v in client.search_model_versions(f"name = '{MODEL}'")
    }
    for alias in ("production", "staging"):
        moves = query(
            ws,
            "select from_version, to_version from shipyard_alias_events "
            "where model_name = ? and alias = ? order by id",
            MODEL,
            alias,
        )
        previous = None
        for move in moves:
            assert move["from_version"] == previous, f"{alias} history broken: {moves}"
            previous = move["to_version"]
        assert previous == str(client.get_model_version_by_alias(MODEL, alias).version)
        if alias == "production":
            assert all(mse[m["to_version"]] < mse[m["from_version"]] for m in moves[1:])
        else:
            assert [m["to_version"] for m in moves] == [str(i) for i in range(1, len(mse) + 1)]


def test_every_passed_gate_decision_has_its_version(parallel_runs, summaries, query, mlflow_client):
    ws, _ = parallel_runs
    decisions = query(
        ws,
        "select id, candidate_run_id, champion_version, verdict, reason, pipeline_run_id "
        "from shipyard_gate_decisions where model_name = ? order by id",
        MODEL,
    )
    assert {d["pipeline_run_id"] for d in decisions} == {s["pipeline_run_id"] for s in summaries.values()}
    # A run decides once, and again each time production moved between its decision and its move.
    final = {}
    for d in decisions:
        if d["pipeline_run_id"] in final:
            assert d["reason"].startswith("re-evaluated: production moved"), d
        final[d["pipeline_run_id"]] = d
    client = mlflow_client(ws)
    version_of_run = {v.run_id: str(v.version) for v in client.search_model_versions(f"name = '{MODEL}'")}
    production_moves = {
        m["to_version"]: m["from_version"]
        for m in query(
            ws,
            "select from_version, to_version from shipyard_alias_events "
            "where model_name = ? and alias = 'production'",
            MODEL,
        )
    }
    for s in summaries.values():
        d = final[s["pipeline_run_id"]]
        assert s["gate"]["verdict"] == d["verdict"] and s["gate"]["champion_version"] == d["champion_version"]
        if d["verdict"] == "passed":
            version = version_of_run.get(d["candidate_run_id"])
            assert version is not None, f"passed decision without a registered version: {d}"
            # Compare-and-set: the champion the final decision beat is the one production left.
            assert production_moves[version] == d["champion_version"]
        else:
            assert d["verdict"] == "rejected"
            assert d["candidate_run_id"] not in version_of_run or d["reason"].startswith("re-evaluated")


def test_parallel_first_use_of_a_fresh_workspace(tmp_path, shipyard_bin):
    ws = tmp_path / "ws"
    procs = [
        subprocess.Popen(
            [str(shipyard_bin), "models", "list", "--workspace", str(ws), "--output", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [0] * 6, [err[-300:] for code, err in zip(codes, errors, strict=True) if code]
