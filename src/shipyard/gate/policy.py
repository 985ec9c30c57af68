"""Evaluation policies: is the candidate better than the champion by enough?

Pure functions of the config and the two values, so every rule is unit-testable; the recorded
decision is written by gate.records.

A metric computed on a handful of rows says nothing (an mse on 1 row "better by 74%"), so the
number of evaluation rows counts too: the training script logs it as the metric `eval_rows`
(EVAL_ROWS_METRIC), and a candidate evaluated on fewer than `gate.min_eval_rows` is refused; a
champion evaluated on too few rows is not compared with. A run that does not log `eval_rows` is
compared as before (scripts written before the rule keep working) and the reason says so.

A version that someone took out of production (a rollback, `models alias set`, `models alias
delete`: any move of `production` away from it that was not the gate's) is not put back by the
gate: a re-run that reuses its training run is refused with the reason it was withdrawn
(`candidate_withdrawn`, found by gate.promotion.withdrawal). Putting it back is a person's call.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from shipyard.config.models import GateConfig

PASSED, REJECTED, SKIPPED = "passed", "rejected", "skipped"
EVAL_ROWS_METRIC = "eval_rows"


@dataclass
class GateDecision:
    verdict: str  # passed | rejected | skipped
    reason: str
    metric: str
    direction: str
    candidate_run_id: str
    candidate_value: float | None
    champion_version: str | None = None
    champion_run_id: str | None = None
    champion_value: float | None = None
    eval_rows: int | None = None  # the candidate's evaluation rows; None: not reported
    policy: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    # A decision reused from the step cache: the pipeline run that made it and its reason then
    # (`reason` says it was reused); None when it was made now.
    decided_by: str | None = None
    decided_reason: str | None = None

    @property
    def accepted(self) -> bool:
        """True when later steps (register, deploy) should go on."""
        return self.verdict in (PASSED, SKIPPED)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, with `accepted` (the evaluate step's stored output)."""
        out = asdict(self)
        for reused in ("decided_by", "decided_reason"):
            if out[reused] is None:
                del out[reused]
        return out | {"accepted": self.accepted}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateDecision:
        """A decision `to_dict` wrote (`accepted` is derived; keys of other versions ignored)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


def eval_rows(metrics: dict[str, float]) -> int | None:
    """The evaluation row count a run logged (its `eval_rows` metric); None when absent or not a
    count."""
    value = metrics.get(EVAL_ROWS_METRIC)
    if value is None or not math.isfinite(value) or value < 0:
        return None
    return int(value)


def decide(
    config: GateConfig,
    *,
    candidate_run_id: str,
    candidate_value: float | None,
    champion_version: str | None = None,
    champion_run_id: str | None = None,
    champion_value: float | None = None,
    available_metrics: list[str] | None = None,
    candidate_eval_rows: int | None = None,
    champion_eval_rows: int | None = None,
    candidate_withdrawn: str | None = None,
) -> GateDecision:
    """Apply the gate policy. A tie is a rejection; a missing metric is a rejection; a metric
    computed on fewer than `min_eval_rows` rows is a rejection; a candidate that was taken out of
    production (`candidate_withdrawn`: when, by whom and why) is a rejection, gate or no gate."""
    note = ""

    def verdict(v: str, reason: str) -> GateDecision:
        return GateDecision(
            verdict=v,
            reason=reason + note,
            metric=config.metric,
            direction=config.direction,
            candidate_run_id=candidate_run_id,
            candidate_value=candidate_value,
            champion_version=champion_version,
            champion_run_id=champion_run_id,
            champion_value=champion_value,
            eval_rows=candidate_eval_rows,
            policy=config.model_dump(),
        )

    m = config.metric
    if candidate_withdrawn:
        return verdict(REJECTED, candidate_withdrawn)
    if not config.enabled:
        return verdict(SKIPPED, "gate disabled in shipyard.yaml (gate.enabled: false)")
    if candidate_value is None or (isinstance(candidate_value, float) and math.isnan(candidate_value)):
        logged = ", ".join(sorted(available_metrics or [])) or "none"
        return verdict(REJECTED, f"candidate run did not log metric {m!r} (logged: {logged})")
    least = config.min_eval_rows
    if least and candidate_eval_rows is None:
        note = (
            f" (evaluation rows not reported: log the metric {EVAL_ROWS_METRIC!r} for "
            "gate.min_eval_rows to apply)"
        )
    elif candidate_eval_rows is not None and candidate_eval_rows < least:
        return verdict(
            REJECTED,
            f"candidate {m} {_fmt(candidate_value)} was evaluated on {_rows(candidate_eval_rows)}; "
            f"the gate needs at least {least} (gate.min_eval_rows)",
        )
    lower = config.direction == "lower"
    if config.threshold is not None:
        meets = candidate_value <= config.threshold if lower else candidate_value >= config.threshold
        if not meets:
            op = "<=" if lower else ">="
            return verdict(
                REJECTED,
                f"{m} {_fmt(candidate_value)} does not meet the threshold ({op} {_fmt(config.threshold)})",
            )
    if champion_run_id is not None and champion_run_id == candidate_run_id:
        return verdict(PASSED, f"candidate run is already production v{champion_version}")
    if champion_version is None:
        return verdict(PASSED, f"no production model yet; candidate {m} {_fmt(candidate_value)} accepted")
    if champion_value is not None and champion_eval_rows is not None and champion_eval_rows < least:
        return verdict(
            PASSED,
            f"production v{champion_version} was evaluated on {_rows(champion_eval_rows)}, fewer than "
            f"gate.min_eval_rows ({least}): its {m} is not compared; candidate {m} "
            f"{_fmt(candidate_value)} accepted",
        )
    if champion_value is None:
        return verdict(
            REJECTED,
            f"production v{champion_version} has no metric {m!r} to compare with; "
            "set the alias by hand (shipyard models alias set) or disable the gate",
        )
    improvement = (champion_value - candidate_value) if lower else (candidate_value - champion_value)
    relative = improvement / abs(champion_value) if champion_value else math.inf
    compared = (
        f"candidate {m} {_fmt(candidate_value)} vs production v{champion_version} {_fmt(champion_value)} "
        f"({config.direction} is better)"
    )
    if improvement == 0:
        return verdict(REJECTED, f"tie: {compared}")
    if improvement < 0:
        return verdict(REJECTED, f"worse: {compared}")
    if improvement < config.min_absolute_change:
        return verdict(
            REJECTED,
            f"improvement {_fmt(improvement)} below min_absolute_change {_fmt(config.min_absolute_change)}: "
            f"{compared}",
        )
    if relative < config.min_relative_change:
        return verdict(
            REJECTED,
            f"relative improvement {relative:.2%} below min_relative_change "
            f"{config.min_relative_change:.2%}: {compared}",
        )
    return verdict(PASSED, f"better by {_fmt(improvement)} ({relative:.2%}): {compared}")
