"""Recorded gate decisions (Shipyard's store): written once per evaluation, shown by `gate show`."""

from __future__ import annotations

from sqlalchemy import select

from shipyard.gate.policy import GateDecision
from shipyard.store import utcnow
from shipyard.store.models import GateDecisionRow
from shipyard.workspace import Workspace


def record_decision(
    ws: Workspace, model_name: str, decision: GateDecision, pipeline_run_id: str | None
) -> int:
    """Persist a decision; returns its id."""
    with ws.store.session() as s:
        row = GateDecisionRow(
            pipeline_run_id=pipeline_run_id,
            model_name=model_name,
            metric=decision.metric,
            direction=decision.direction,
            candidate_run_id=decision.candidate_run_id,
            candidate_value=decision.candidate_value,
            champion_version=decision.champion_version,
            champion_run_id=decision.champion_run_id,
            champion_value=decision.champion_value,
            verdict=decision.verdict,
            reason=decision.reason,
            policy=decision.policy,
            created_at=utcnow(),
        )
        s.add(row)
        s.flush()
        decision.id = row.id
        return row.id


def list_decisions(ws: Workspace, model_name: str | None = None, limit: int = 20) -> list[dict]:
    """Latest decisions first."""
    with ws.store.session() as s:
        q = select(GateDecisionRow).order_by(GateDecisionRow.id.desc()).limit(limit)
        if model_name:
            q = q.where(GateDecisionRow.model_name == model_name)
        return [
            {
                "id": r.id,
                "created_at": r.created_at.isoformat(timespec="seconds"),
                "pipeline_run_id": r.pipeline_run_id,
                "model_name": r.model_name,
                "metric": r.metric,
                "direction": r.direction,
                "candidate_run_id": r.candidate_run_id,
                "candidate_value": r.candidate_value,
                "champion_version": r.champion_version,
                "champion_run_id": r.champion_run_id,
                "champion_value": r.champion_value,
                "verdict": r.verdict,
                "reason": r.reason,
            }
            for r in s.scalars(q)
        ]
