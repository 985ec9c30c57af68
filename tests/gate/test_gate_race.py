"""Production moves by compare-and-set: a candidate whose champion changed after its gate decision
is decided again against the new champion (and the decision recorded), never promoted on a stale
comparison. The race is made deterministic: the reporter moves production between evaluate and
register, exactly where another machine's pipeline would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pg_support import postgres_server  # noqa: F401  (the session's PostgreSQL server)
from sqlalchemy import text

from shipyard.config.loader import load_project, resolve_workspace_settings
from shipyard.gate.policy import GateDecision
from shipyard.pipeline.outputs import RegisteredModel
from shipyard.pipeline.runner import SilentReporter, run_pipeline
from shipyard.registry.aliases import AliasConflict, compare_and_set, current
from shipyard.registry.models import alias_history, set_alias
from shipyard.workspace import Workspace

pytestmark = pytest.mark.integration
MODEL = "diabetes-ridge"


class MoveProductionAfterEvaluate(SilentReporter):
    """Plays the other machine: moves production to `version` once evaluate has decided."""

    def __init__(self, ws: Workspace, version: str):
        self.ws, self.version = ws, version

    def step_finished(self, step, status, duration_s, message) -> None:
        if step == "evaluate":
            set_alias(self.ws, MODEL, "production", self.version, reason="the other machine", who="other")


@pytest.fixture(params=["sqlite", "postgresql"])
def project(request, tmp_path, copy_project) -> tuple[Path, Workspace]:
    """The example without deployment, on the embedded default and on PostgreSQL (tests that
    only need one of them say so with `indirect` parametrization)."""
    proj = copy_project(tmp_path / "project", deployment=False)
    cli = {}
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        cli["database_uri"] = server.create_database()
    ws = Workspace.get_or_create(resolve_workspace_settings(load_project(proj / "shipyard.yaml"), cli=cli))
    yield proj, ws
    ws.store.dispose()


def query(ws: Workspace, sql: str, **params) -> list[dict]:
    with ws.store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def mlflow_client(ws: Workspace):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=ws.database_uri, registry_uri=ws.database_uri)


def _run(ws: Workspace, proj: Path, alpha: float, reporter=None):
    return run_pipeline(ws, load_project(proj / "shipyard.yaml"), params={"alpha": alpha}, reporter=reporter)


# The race scenarios run on PostgreSQL, the shared case; the compare-and-set itself runs on both
# below, and tests/pipeline/test_concurrency.py races six pipelines on SQLite.
@pytest.mark.parametrize("project", ["postgresql"], indirect=True)
def test_candidate_that_lost_the_race_is_decided_again_and_not_registered(project):
    proj, ws = project
    assert _run(ws, proj, 1.0).status == "succeeded"  # v1 (mse 3077)
    assert _run(ws, proj, 0.1).status == "succeeded"  # v2: the best alpha (mse 2856)
    set_alias(ws, MODEL, "production", "1", reason="back to v1 for the test", who="test")

    # alpha=0.5 (mse 2917) beats v1, but production moves to v2 before it registers.
    result = _run(ws, proj, 0.5, MoveProductionAfterEvaluate(ws, "2"))

    assert result.status == "rejected"
    evaluate = result.outputs["evaluate"]
    assert isinstance(evaluate, GateDecision)
    assert evaluate.verdict == "passed"
    assert evaluate.champion_version == "1"
    final = result.gate
    assert final is not None
    assert final.verdict == "rejected" and final.champion_version == "2"
    assert final.reason.startswith("re-evaluated: production moved from v1 to v2")
    assert "worse" in final.reason
    assert [s["status"] for s in result.steps][-1] == "succeeded"  # register decided, no version
    client = mlflow_client(ws)
    assert sorted(int(v.version) for v in client.search_model_versions(f"name = '{MODEL}'")) == [1, 2]
    assert str(client.get_model_version_by_alias(MODEL, "production").version) == "2"
    rows = query(
        ws,
        "select verdict, champion_version from shipyard_gate_decisions "
        "where pipeline_run_id = :p order by id",
        p=result.pipeline_run_id,
    )
    assert rows == [
        {"verdict": "passed", "champion_version": "1"},
        {"verdict": "rejected", "champion_version": "2"},
    ]


@pytest.mark.parametrize("project", ["postgresql"], indirect=True)
def test_candidate_still_better_after_the_race_moves_from_the_new_champion(project):
    proj, ws = project
    assert _run(ws, proj, 1.0).status == "succeeded"  # v1 (mse 3077)
    assert _run(ws, proj, 0.5).status == "succeeded"  # v2 (mse 2917)
    set_alias(ws, MODEL, "production", "1", reason="back to v1 for the test", who="test")

    result = _run(ws, proj, 0.1, MoveProductionAfterEvaluate(ws, "2"))  # 2856 beats both

    assert result.status == "succeeded"
    assert result.gate is not None
    assert result.gate.verdict == "passed" and result.gate.champion_version == "2"
    register = result.outputs["register"]
    assert isinstance(register, RegisteredModel) and register.version == "3"
    moves = [m for m in alias_history(ws, MODEL, "production")]
    assert (moves[-1]["from"], moves[-1]["to"]) == ("2", "3")  # from the champion it really beat
    assert moves[-1]["why"].startswith("gate passed: re-evaluated: production moved from v1 to v2")
    assert str(mlflow_client(ws).get_model_version_by_alias(MODEL, "production").version) == "3"


def test_compare_and_set_refuses_a_stale_expectation(project):
    proj, ws = project
    assert _run(ws, proj, 1.0).status == "succeeded"
    assert _run(ws, proj, 0.5).status == "succeeded"  # production: v2, staging: v2
    assert current(ws, MODEL, "production") == "2"

    with pytest.raises(AliasConflict) as caught:
        compare_and_set(ws, MODEL, "production", "1", expected="1", reason="stale", actor="t")
    assert caught.value.current == "2" and "moved to v2" in str(caught.value)
    with pytest.raises(AliasConflict):  # "unset" is an expectation too
        compare_and_set(ws, MODEL, "production", "1", expected=None, reason="stale", actor="t")
    assert current(ws, MODEL, "production") == "2"

    move = compare_and_set(ws, MODEL, "production", "1", expected="2", reason="rollback", actor="t")
    assert move.moved and (move.from_version, move.to_version) == ("2", "1")
    # MLflow's own client sees the alias written by the compare-and-set, and a new alias too.
    assert str(mlflow_client(ws).get_model_version_by_alias(MODEL, "production").version) == "1"
    compare_and_set(ws, MODEL, "candidate", "2", expected=None, reason="new alias", actor="t")
    assert str(mlflow_client(ws).get_model_version_by_alias(MODEL, "candidate").version) == "2"
    history = alias_history(ws, MODEL, "production")
    assert [(m["from"], m["to"], m["why"]) for m in history][-1] == ("2", "1", "rollback")
