"""The move the gate allows, made safe for many machines at once.

The gate compares a candidate with the production version of the moment; by the time the
candidate is registered another pipeline may have moved production. So production moves to the
candidate only by a compare-and-set from the champion the gate compared against
(registry/aliases.py). When production moved in between, the candidate is compared again with the
new champion, that decision is recorded too (its reason says why it was made), and the move is
tried again from there: the winner of a race is the better model, never the later one.

Only the gate moves production automatically, and it never moves it back onto a version a person
took out of production (`withdrawal`): after `shipyard rollback`, a re-run whose training is
reused would otherwise pass its cached decision again and redeploy what was just rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select

from shipyard.config.models import GateConfig
from shipyard.gate.policy import GateDecision, decide, eval_rows
from shipyard.gate.records import record_decision
from shipyard.registry.aliases import AliasConflict, AliasMove, compare_and_set, current
from shipyard.registry.models import ModelRef, ModelVersionInfo, resolve
from shipyard.store.models import AliasEvent
from shipyard.workspace import Workspace

ALIAS = "production"
MAX_ATTEMPTS = 20
GATE_REASON = "gate "  # how the gate's own moves of production begin their reason


@dataclass
class Candidate:
    """What the gate knows of a candidate: its run and the metrics that run logged."""

    run_id: str
    metrics: dict[str, float]


def withdrawal(ws: Workspace, model_name: str, version: str | None) -> AliasEvent | None:
    """The move that took `version` out of production, when the last move of production that
    involved `version` took it away and was not the gate's (a rollback, or a person's alias set or
    delete). None when `version` is None, never held production, holds it now, or lost it to a
    better candidate."""
    if version is None:
        return None
    with ws.store.session() as s:
        last = s.scalars(
            select(AliasEvent)
            .where(
                AliasEvent.model_name == model_name,
                AliasEvent.alias == ALIAS,
                or_(AliasEvent.from_version == version, AliasEvent.to_version == version),
            )
            .order_by(AliasEvent.id.desc())
            .limit(1)
        ).first()
    if last is None or last.to_version == version or last.reason.startswith(GATE_REASON):
        return None
    return last


def withdrawn_reason(event: AliasEvent, model_name: str) -> str:
    """Why the gate refuses a candidate that `event` took out of production, and what to do."""
    when = event.created_at.isoformat(timespec="seconds")
    return (
        f"v{event.from_version} was taken out of production on {when} by {event.actor} "
        f"({event.reason}); the gate does not put a withdrawn version back: train a new candidate, "
        f"or move production by hand (shipyard models alias set {model_name} production "
        f"{event.from_version})"
    )


def decide_against(
    ws: Workspace,
    gate: GateConfig,
    candidate: Candidate,
    champion: ModelVersionInfo | None,
    withdrawn: str | None = None,
) -> GateDecision:
    """Apply the gate policy to `candidate` against `champion` (None: no production yet);
    `withdrawn` is why the candidate's version was taken out of production, if it was."""
    champion_metrics: dict[str, float] = {}
    if champion is not None and champion.run_id:
        champion_metrics = ws.mlflow.get_run(champion.run_id).data.metrics
    return decide(
        gate,
        candidate_run_id=candidate.run_id,
        candidate_value=candidate.metrics.get(gate.metric),
        champion_version=champion.version if champion else None,
        champion_run_id=champion.run_id if champion else None,
        champion_value=champion_metrics.get(gate.metric),
        available_metrics=list(candidate.metrics),
        candidate_eval_rows=eval_rows(candidate.metrics),
        champion_eval_rows=eval_rows(champion_metrics),
        candidate_withdrawn=withdrawn,
    )


def recheck(
    ws: Workspace,
    gate: GateConfig,
    model_name: str,
    candidate: Candidate,
    decision: GateDecision,
    pipeline_run_id: str | None,
) -> GateDecision:
    """`decision` if production still holds its champion, else a new recorded decision against
    the version production holds now. Call before registering, so that a candidate that lost its
    race is not registered at all."""
    now = current(ws, model_name, ALIAS)
    if now == decision.champion_version:
        return decision
    return _redecide(ws, gate, model_name, candidate, decision.champion_version, now, pipeline_run_id)


def promote(
    ws: Workspace,
    gate: GateConfig,
    model_name: str,
    version: str,
    candidate: Candidate,
    decision: GateDecision,
    *,
    actor: str,
    pipeline_run_id: str | None,
) -> tuple[GateDecision, AliasMove | None]:
    """Move production to `version` if `decision` (and any decision made again after a lost
    race) accepts it. Returns the final decision and the move (None when the final decision
    rejects the candidate)."""
    expected = decision.champion_version
    for _ in range(MAX_ATTEMPTS):
        if not decision.accepted:
            return decision, None
        try:
            move = compare_and_set(
                ws,
                model_name,
                ALIAS,
                version,
                expected=expected,
                reason=f"{GATE_REASON}{decision.verdict}: {decision.reason}",
                actor=actor,
                pipeline_run_id=pipeline_run_id,
            )
            return decision, move
        except AliasConflict as exc:
            decision = _redecide(ws, gate, model_name, candidate, expected, exc.current, pipeline_run_id)
            expected = exc.current
    raise AliasConflict(model_name, ALIAS, expected, current(ws, model_name, ALIAS))


def _redecide(
    ws: Workspace,
    gate: GateConfig,
    model_name: str,
    candidate: Candidate,
    was: str | None,
    now: str | None,
    pipeline_run_id: str | None,
) -> GateDecision:
    champion = resolve(ws, ModelRef(model_name, version=now)) if now else None
    decision = decide_against(ws, gate, candidate, champion)
    was_text = f"v{was}" if was else "no version"
    now_text = f"v{now}" if now else "no version"
    decision.reason = (
        f"re-evaluated: production moved from {was_text} to {now_text} after the first decision; "
        + decision.reason
    )
    record_decision(ws, model_name, decision, pipeline_run_id)
    return decision
