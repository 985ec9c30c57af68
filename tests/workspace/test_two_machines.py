"""Two machines on one shared workspace (PostgreSQL + S3), as a team and its CI runners use it.

Each "machine" is a separate clone of the project with its own workspace root, its own local
artifact cache and its own host identity; both point at the same PostgreSQL database and the same
S3 bucket (a real SeaweedFS server that checks credentials). Six `shipyard run`s with different
alphas start at once, three on each machine. Afterwards: unique consecutive versions, exactly one
production alias, on the best passing candidate, every gate decision recorded with the champion it
compared against and the alias history a chain; then machine B re-runs machine A's parameters and
every step is reused from the shared cache, the bundle coming from the artifact store.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from pg_support import postgres_server  # noqa: F401
from s3_support import s3_server  # noqa: F401
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.integration

MODEL = "diabetes-ridge"
# Test-set mse of each alpha (tests/pipeline/test_concurrency.py): 0.1 is the best.
SPLIT = {"a": ["1.0", "0.1", "0.01"], "b": ["0.5", "0.3", "0.05"]}


@pytest.fixture(scope="module")
def team(tmp_path_factory, copy_project, postgres_server, s3_server, shipyard_bin):
    root = tmp_path_factory.mktemp("team")
    db = postgres_server.create_database()
    bucket = s3_server.create_bucket()
    machines = {}
    for name in ("a", "b"):
        proj = copy_project(root / name)
        env = {
            **os.environ,
            **s3_server.env(),
            "SHIPYARD_DATABASE_URI": db,
            "SHIPYARD_ARTIFACT_URI": f"s3://{bucket}/team",
            "SHIPYARD_CACHE_DIR": str(root / f"{name}-cache"),
            "SHIPYARD_HOST_ID": f"machine-{name}",
        }
        machines[name] = (proj, env)

    def run(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        proj, env = machines[name]
        return subprocess.run(
            [str(shipyard_bin), *args], cwd=proj, env=env, capture_output=True, text=True, timeout=timeout
        )

    # One process creates the schemas first (as `shipyard workspace check` would on set-up).
    warm = run("a", "models", "list")
    assert warm.returncode == 0, warm.stderr
    procs = []
    for name, alphas in SPLIT.items():
        proj, env = machines[name]
        for alpha in alphas:
            cmd = [
                str(shipyard_bin),
                "run",
                "--until",
                "package",
                "--param",
                f"alpha={alpha}",
                "--output",
                "json",
            ]
            procs.append((name, alpha, subprocess.Popen(cmd, cwd=proj, env=env, stdout=subprocess.PIPE,
                                                        stderr=subprocess.PIPE, text=True)))  # fmt: skip
    results = {}
    try:
        for name, alpha, proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, (
                f"machine {name} alpha={alpha} exited {proc.returncode}:\n{err[-3000:]}"
            )
            results[alpha] = (name, json.loads(out))
    finally:
        for _, _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    engine = create_engine(db)
    yield machines, run, results, engine, db, postgres_server.password
    engine.dispose()


def _rows(engine, sql: str, **params) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def test_versions_unique_and_one_production_on_the_best(team):
    _, _, results, engine, db, _ = team
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=db, registry_uri=db)
    versions = client.search_model_versions(f"name = '{MODEL}'")
    numbers = sorted(int(v.version) for v in versions)
    assert numbers == list(range(1, len(numbers) + 1)) and numbers
    registered = {s["model"]["version"]: s["run"]["run_id"] for _, s in results.values() if "model" in s}
    assert registered == {str(v.version): v.run_id for v in versions}
    mse = {str(v.version): client.get_run(v.run_id).data.metrics["mse"] for v in versions}
    production = _rows(
        engine,
        "select version from registered_model_aliases where name = :n and alias = :a",
        n=MODEL,
        a="production",
    )
    assert len(production) == 1
    assert str(production[0]["version"]) == min(mse, key=mse.get)
    best = min(results.values(), key=lambda r: r[1]["run"]["metrics"]["mse"])[1]
    assert best["model"]["version"] == str(production[0]["version"])  # the best candidate of all


def test_every_decision_names_its_champion_and_the_history_is_a_chain(team):
    _, _, results, engine, _, _ = team
    decisions = _rows(engine, "select pipeline_run_id, champion_version, verdict, reason, candidate_run_id "
                              "from shipyard_gate_decisions order by id")  # fmt: skip
    runs = {s["pipeline_run_id"] for _, s in results.values()}
    assert {d["pipeline_run_id"] for d in decisions} == runs
    final = {}
    for d in decisions:
        if d["pipeline_run_id"] in final:
            assert d["reason"].startswith("re-evaluated: production moved"), d
        final[d["pipeline_run_id"]] = d
    moves = _rows(engine, "select from_version, to_version from shipyard_alias_events "
                          "where model_name = :n and alias = 'production' order by id", n=MODEL)  # fmt: skip
    previous = None
    for m in moves:
        assert m["from_version"] == previous, moves
        previous = m["to_version"]
    into = {m["to_version"]: m["from_version"] for m in moves}
    for _, s in results.values():
        d = final[s["pipeline_run_id"]]
        assert s["gate"]["verdict"] == d["verdict"]
        if d["verdict"] == "passed":
            assert into[s["model"]["version"]] == d["champion_version"]


def test_machine_b_reuses_machine_a_steps_and_bundle(team):
    machines, run, results, engine, _, password = team
    name, first = results["0.1"]
    assert name == "a"
    assert "package" in [s["step"] for s in first["steps"]]
    again = run("b", "run", "--until", "package", "--param", "alpha=0.1", "--output", "json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["cached_steps"] == ["data_check", "train", "evaluate", "register", "package"]
    assert summary["run"]["run_id"] == first["run"]["run_id"]
    assert password not in again.stdout + again.stderr
    # A's training log and outputs: stored by A, read on B from the artifact store.
    files = run("b", "runs", "files", first["pipeline_run_id"], "--output", "json")
    assert files.returncode == 0, files.stderr
    listed = json.loads(files.stdout)
    assert (
        listed["path"].startswith(machines["b"][1]["SHIPYARD_CACHE_DIR"]) and "train.log" in listed["files"]
    )
    on_a = machines["a"][0] / ".shipyard" / "runs" / first["pipeline_run_id"] / "train.log"
    assert (Path(listed["path"]) / "train.log").read_bytes() == on_a.read_bytes()
    # A's bundle is not in B's cache: B's re-run found it in the store. `deploy` on B fetches it
    # (verified by hash) into B's cache and serves it; the deployment is B's.
    version = first["model"]["version"]
    (bundle,) = _rows(
        engine, "select stored_hash, uri from shipyard_bundles where model_version = :v", v=version
    )
    assert bundle["uri"].startswith("s3://") and "/team/bundles/diabetes-ridge/" in bundle["uri"]
    cache_b = Path(machines["b"][1]["SHIPYARD_CACHE_DIR"])
    assert not (cache_b / "dirs" / bundle["stored_hash"]).exists()
    try:
        deployed = run("b", "deploy", f"{MODEL}:{version}", "--output", "json")
        assert deployed.returncode == 0, deployed.stderr
        assert (cache_b / "dirs" / bundle["stored_hash"] / "content" / "manifest.json").is_file()
        listed = json.loads(run("a", "endpoints", "list", "--output", "json").stdout)
        assert [(e["model"], e["host"], e["owned_here"]) for e in listed] == [
            (f"{MODEL}:{version}", "machine-b", False)
        ]
        refused = run("a", "endpoints", "delete", "dev")
        assert refused.returncode != 0 and "runs on host machine-b" in refused.stderr
    finally:
        deleted = run("b", "endpoints", "delete", "dev")
    assert deleted.returncode == 0, deleted.stderr
