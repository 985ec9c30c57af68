"""Gate policies: every rule of decide(), as values."""

import pytest

from shipyard.config.models import GateConfig
from shipyard.gate.policy import PASSED, REJECTED, SKIPPED, decide, eval_rows


def _decide(cfg: GateConfig, cand, champ=None, version="1", **kw):
    return decide(
        cfg,
        candidate_run_id="cand",
        candidate_value=cand,
        champion_version=version if champ is not None or kw.get("force_champion") else None,
        champion_run_id="champ" if champ is not None else None,
        champion_value=champ,
        available_metrics=["r2"],
    )


def test_lower_is_better_passes_when_smaller():
    d = _decide(GateConfig(metric="mse", direction="lower"), 90.0, 100.0)
    assert d.verdict == PASSED and d.accepted
    assert "90" in d.reason and "100" in d.reason and "v1" in d.reason


def test_higher_is_better_rejects_when_smaller():
    d = _decide(GateConfig(metric="r2", direction="higher"), 0.4, 0.5)
    assert d.verdict == REJECTED and not d.accepted
    assert d.reason.startswith("worse")


def test_tie_is_a_rejection():
    d = _decide(GateConfig(metric="mse"), 100.0, 100.0)
    assert d.verdict == REJECTED and d.reason.startswith("tie")


def test_missing_candidate_metric_is_a_rejection_naming_what_was_logged():
    d = _decide(GateConfig(metric="mse"), None, 100.0)
    assert d.verdict == REJECTED
    assert "'mse'" in d.reason and "r2" in d.reason


def test_no_champion_passes_if_threshold_met():
    cfg = GateConfig(metric="mse", threshold=4000)
    assert _decide(cfg, 3000.0).verdict == PASSED
    d = _decide(cfg, 4500.0)
    assert d.verdict == REJECTED and "threshold" in d.reason


def test_threshold_applies_with_champion_too():
    d = _decide(GateConfig(metric="r2", direction="higher", threshold=0.5), 0.45, 0.40)
    assert d.verdict == REJECTED and ">= 0.5" in d.reason


@pytest.mark.parametrize(
    ("cfg", "cand", "champ", "verdict"),
    [
        (GateConfig(metric="mse", min_absolute_change=5), 96.0, 100.0, REJECTED),
        (GateConfig(metric="mse", min_absolute_change=5), 94.0, 100.0, PASSED),
        (GateConfig(metric="mse", min_relative_change=0.05), 96.0, 100.0, REJECTED),
        (GateConfig(metric="mse", min_relative_change=0.05), 94.0, 100.0, PASSED),
        (GateConfig(metric="acc", direction="higher", min_relative_change=0.1), 0.85, 0.8, REJECTED),
        (GateConfig(metric="acc", direction="higher", min_relative_change=0.1), 0.9, 0.8, PASSED),
    ],
)
def test_minimum_changes(cfg, cand, champ, verdict):
    assert _decide(cfg, cand, champ).verdict == verdict


def test_disabled_gate_is_skipped_and_accepted():
    d = _decide(GateConfig(enabled=False), None, 1.0)
    assert d.verdict == SKIPPED and d.accepted


def test_champion_without_metric_is_rejected():
    d = decide(
        GateConfig(metric="mse"),
        candidate_run_id="c",
        candidate_value=1.0,
        champion_version="2",
        champion_run_id="x",
        champion_value=None,
    )
    assert d.verdict == REJECTED and "v2" in d.reason


def test_candidate_that_already_is_production_passes():
    d = decide(
        GateConfig(metric="mse"),
        candidate_run_id="same",
        candidate_value=1.0,
        champion_version="3",
        champion_run_id="same",
        champion_value=1.0,
    )
    assert d.verdict == PASSED and "already production v3" in d.reason


def _rows(cfg: GateConfig, cand: float, rows: int | None, champ: float | None = None, champ_rows=None):
    return decide(
        cfg,
        candidate_run_id="cand",
        candidate_value=cand,
        champion_version="1" if champ is not None else None,
        champion_run_id="champ" if champ is not None else None,
        champion_value=champ,
        candidate_eval_rows=rows,
        champion_eval_rows=champ_rows,
    )


def test_candidate_evaluated_on_too_few_rows_is_refused_even_as_the_first_model():
    # The audit's case: mse 753 on 1 row, no production yet, threshold met: it became production.
    d = _rows(GateConfig(metric="mse", threshold=4000), 753.0, 1)
    assert d.verdict == REJECTED and not d.accepted
    assert d.reason == (
        "candidate mse 753 was evaluated on 1 row; the gate needs at least 10 (gate.min_eval_rows)"
    )
    assert d.eval_rows == 1 and d.to_dict()["eval_rows"] == 1
    # Against a champion too, however much better it looks.
    d = _rows(GateConfig(metric="mse", min_eval_rows=30), 1.0, 29, champ=3000.0, champ_rows=89)
    assert d.verdict == REJECTED and "evaluated on 29 rows; the gate needs at least 30" in d.reason


def test_enough_eval_rows_compare_as_usual():
    d = _rows(GateConfig(metric="mse"), 2900.0, 10, champ=3000.0, champ_rows=89)
    assert d.verdict == PASSED and d.reason.startswith("better by 100") and "not reported" not in d.reason
    assert _rows(GateConfig(metric="mse", min_eval_rows=0), 753.0, 1).verdict == PASSED


def test_unreported_eval_rows_compare_as_before_and_say_so():
    d = _rows(GateConfig(metric="mse"), 2900.0, None, champ=3000.0)
    assert d.verdict == PASSED and d.reason.startswith("better by 100")
    assert d.reason.endswith(
        "(evaluation rows not reported: log the metric 'eval_rows' for gate.min_eval_rows to apply)"
    )
    assert d.eval_rows is None
    worse = _rows(GateConfig(metric="mse"), 3100.0, None, champ=3000.0)
    assert worse.verdict == REJECTED and worse.reason.startswith("worse")
    assert "not reported" not in _rows(GateConfig(metric="mse", min_eval_rows=0), 1.0, None).reason


def test_champion_evaluated_on_too_few_rows_is_not_compared_with():
    # Production holds the 1-row model (mse 753): a sound candidate with mse 2900 replaces it.
    d = _rows(GateConfig(metric="mse", threshold=4000), 2900.0, 89, champ=753.0, champ_rows=1)
    assert d.verdict == PASSED
    assert d.reason == (
        "production v1 was evaluated on 1 row, fewer than gate.min_eval_rows (10): its mse is not "
        "compared; candidate mse 2900 accepted"
    )
    # The candidate still has to meet the threshold.
    assert (
        _rows(GateConfig(metric="mse", threshold=4000), 4500.0, 89, champ=753.0, champ_rows=1).verdict
        == REJECTED
    )


@pytest.mark.parametrize(
    ("metrics", "rows"),
    [
        ({"eval_rows": 89.0}, 89),
        ({"mse": 1.0}, None),
        ({"eval_rows": float("nan")}, None),
        ({"eval_rows": -1.0}, None),
    ],
)
def test_eval_rows_read_from_the_run_metrics(metrics, rows):
    assert eval_rows(metrics) == rows


@pytest.mark.parametrize("enabled", [True, False])
def test_a_withdrawn_candidate_is_rejected_whatever_its_metric(enabled):
    why = "v2 was taken out of production on 2026-12-04T10:00:00 by ana (rollback of prod: ...)"
    got = decide(
        GateConfig(metric="mse", enabled=enabled),
        candidate_run_id="r2",
        candidate_value=1.0,
        champion_version="1",
        champion_run_id="r1",
        champion_value=2900.0,
        candidate_withdrawn=why,
    )
    assert (got.verdict, got.reason) == (REJECTED, why)
