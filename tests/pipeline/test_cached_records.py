"""A re-run that reuses the evaluate and register steps from the cache says what really happened
in it: model.json says `created: false` (nothing was registered) and the gate's reason names the
run that decided, instead of repeating "no production model yet" when this model is production."""

import json
import shutil
from pathlib import Path

import pytest

from shipyard.cli.run import summarize, write_outputs
from shipyard.config.loader import load_project, resolve_workspace_settings
from shipyard.gate.policy import GateDecision
from shipyard.pipeline import records
from shipyard.pipeline.context import StepContext
from shipyard.pipeline.outputs import TrainedRun
from shipyard.pipeline.runner import PipelineResult, SilentReporter, _run_step
from shipyard.pipeline.steps import EvaluateStep, RegisterStep
from shipyard.store import utcnow
from shipyard.store.models import AliasEvent
from shipyard.workspace import Workspace

EXAMPLE = Path(__file__).parents[2] / "examples" / "diabetes"
RUN = "r" * 32
FIRST_REASON = "no production model yet"


@pytest.fixture()
def ctx_for(tmp_path):
    project = tmp_path / "proj"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".shipyard", "outputs", "__pycache__"))
    cfg = load_project(project / "shipyard.yaml")
    ws = Workspace.get_or_create(resolve_workspace_settings(cfg, env={}))

    def make() -> StepContext:
        run_id = records.create_pipeline_run(ws, cfg.name, {}, ["evaluate", "register"])
        ctx = StepContext(ws=ws, config=cfg, pipeline_run_id=run_id, params={})
        ctx.outputs["train"] = TrainedRun(RUN, metrics={"mse": 3000.0}, model_uri="runs:/x/model")
        return ctx

    yield make
    ws.store.dispose()


def _first_run(ctx: StepContext) -> None:
    """What the run that registered v1 and promoted it recorded (as the runner of the previous
    version stored it: plain JSON, without the keys later versions added)."""
    decision = {
        "verdict": "passed",
        "reason": FIRST_REASON,
        "metric": "mse",
        "direction": "minimize",
        "candidate_run_id": RUN,
        "candidate_value": 3000.0,
        "champion_version": None,
        "champion_run_id": None,
        "champion_value": None,
        "accepted": True,
    }
    ctx.outputs["evaluate"] = GateDecision.from_dict(decision)
    moves = [{"alias": "production", "from": None, "to": "1", "moved": True}]
    register = {
        "model_name": ctx.model_name,
        "version": "1",
        "run_id": RUN,
        "created": True,
        "source": "runs:/x/model",
        "alias_moves": moves,
        "aliases": ["production"],
        "gate": decision,
        "rejected": False,
    }
    for step, outputs in (("evaluate", decision), ("register", register)):
        key = (EvaluateStep() if step == "evaluate" else RegisterStep()).cache_key(ctx)
        records.update_step(
            ctx.ws, ctx.pipeline_run_id, step, status="succeeded", cache_key=key, outputs=outputs
        )
    with ctx.ws.store.session() as s:
        s.add(
            AliasEvent(
                model_name=ctx.model_name,
                alias="production",
                from_version=None,
                to_version="1",
                actor="test",
                reason="promoted",
                pipeline_run_id=ctx.pipeline_run_id,
                created_at=utcnow(),
            )
        )


def test_cached_register_and_gate_say_what_happened_in_this_run(ctx_for, tmp_path) -> None:
    first = ctx_for()
    _first_run(first)

    again = ctx_for()
    result = PipelineResult(again.pipeline_run_id, "running")
    for step in (EvaluateStep(), RegisterStep()):
        _run_step(again, step, False, result, SilentReporter())
    result.outputs = again.outputs
    assert [s["status"] for s in result.steps] == ["cached", "cached"]

    summary = summarize(result)
    gate = summary["gate"]
    assert gate["verdict"] == "passed"
    assert gate["reason"].startswith("this run's model is production already (v1); ")
    assert f"decided by pipeline run {first.pipeline_run_id[:8]}" in gate["reason"]
    assert gate["reason"].endswith(FIRST_REASON)
    assert again.output("evaluate", GateDecision).decided_by == first.pipeline_run_id

    write_outputs(tmp_path / "out", summary)
    model = json.loads((tmp_path / "out" / "model.json").read_text())
    assert model["version"] == "1" and model["created"] is False and model["alias_moves"] == []
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["gate"]["reason"] == gate["reason"]

    # What the first run recorded is unchanged, so a later hit wraps the original reason once.
    [(outputs, source)] = records.cache_hits(first.ws, "evaluate", EvaluateStep().cache_key(again))
    assert source == first.pipeline_run_id and outputs["reason"] == FIRST_REASON
