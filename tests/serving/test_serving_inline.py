"""Inline scoring (limits.ScoringSlots): a fast model is scored on the event loop, its timeout is
a SIGALRM timer that interrupts the call and frees the slot at once, and a slow call sends the
next ones back to the scoring thread, so health checks are not held up behind them."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from bundles import SCORE_PY, make_bundle, serving
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

# As in test_serving_protection: a negative first value sleeps that many seconds, in Python code
# that also catches Exception (the timeout must get through it).
SLOW_SCORE_PY = SCORE_PY.replace(
    "    data = np.array(",
    "    import time\n    first = json.loads(raw_data)['data'][0][0]\n"
    "    if first < 0:\n        try:\n            time.sleep(-first)\n"
    "        except Exception:\n            return 'swallowed'\n    data = np.array(",
)
FAST = {"data": [[0.01] * 10]}


def _slow(seconds: float) -> dict:
    return {"data": [[-seconds] + [0.0] * 9]}


def calls(url: str) -> dict[str, float]:
    """Model calls so far by where they ran ("inline" on the event loop, "thread"), from /metrics."""
    text = httpx.get(f"{url}/metrics").text
    return {
        s.labels["where"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "shipyard_scoring_calls_total"
    }


def score(url: str, payload: dict) -> tuple[httpx.Response, str]:
    """POST /score, and where the model call ran."""
    before = calls(url)
    r = httpx.post(f"{url}/score", json=payload, timeout=10)
    after = calls(url)
    [where] = [w for w in after if after[w] != before.get(w, 0)]
    assert after[where] == before.get(where, 0) + 1
    return r, where


@pytest.fixture
def url(tmp_path):
    """A fresh server for each test: where calls run depends on the calls before them."""
    bundle, _ = make_bundle(tmp_path, SLOW_SCORE_PY)
    settings = {"scoring_timeout_ms": 1000, "max_queue_wait_ms": 100, "max_concurrent_requests": 1}
    with serving(bundle, tmp_path, settings, name="inline") as proc:
        yield proc.url


def warm_up(url: str) -> None:
    """Fast calls until they run inline (the first three run on the thread)."""
    wheres = [score(url, FAST) for _ in range(5)]
    assert all(r.status_code == 200 for r, _ in wheres)
    assert [where for _, where in wheres] == ["thread"] * 3 + ["inline"] * 2


def test_a_hanging_inline_call_is_interrupted_and_frees_its_slot(url):
    warm_up(url)
    r, where = score(url, _slow(3))
    # Inline, the SIGALRM timer interrupts the call at the timeout (1 s) instead of waiting out
    # the 3 s sleep (benchmarks/serving/bench_inline.py measures how soon the 504 comes).
    assert where == "inline"
    assert r.status_code == 504 and r.json()["error"]["code"] == "scoring_timeout"
    # The call was interrupted, so its slot is free right away: on the scoring thread it would
    # still be held (sleeping) and this request would get 503 after the 100 ms queue wait.
    r = httpx.post(f"{url}/score", json=FAST)
    assert r.status_code == 200 and r.json() != "swallowed"


def test_after_a_slow_call_the_next_ones_run_on_the_thread(url):
    warm_up(url)
    # A 0.6 s call still runs inline (the average was fast) and raises the average: the next
    # one runs on the scoring thread, so the event loop answers the liveness probe meanwhile
    # (benchmarks/serving/bench_inline.py measures the probe's wait).
    r, where = score(url, _slow(0.6))
    assert r.status_code == 200 and where == "inline"
    result = {}

    def slow_call():
        result["call"] = score(url, _slow(0.6))

    caller = threading.Thread(target=slow_call)
    caller.start()
    time.sleep(0.15)
    assert httpx.get(f"{url}/", timeout=10).status_code == 200
    caller.join()
    r, where = result["call"]
    assert r.status_code == 200 and where == "thread"
