"""Inline scoring (limits.ScoringSlots): a fast model is scored on the event loop, its timeout is
a SIGALRM timer that interrupts the call and frees the slot at once, and a slow call sends the
next ones back to the scoring thread, so health checks are not held up behind them."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from bundles import SCORE_PY, make_bundle, serving

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


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    root = tmp_path_factory.mktemp("inline")
    bundle, _ = make_bundle(root, SLOW_SCORE_PY)
    settings = {"scoring_timeout_ms": 1000, "max_queue_wait_ms": 100, "max_concurrent_requests": 1}
    with serving(bundle, root, settings, name="inline") as proc:
        yield proc.url


def test_a_hanging_inline_call_is_interrupted_and_frees_its_slot(url):
    for _ in range(5):  # fast calls: the worker now scores inline
        assert httpx.post(f"{url}/score", json=FAST).status_code == 200
    start = time.monotonic()
    r = httpx.post(f"{url}/score", json=_slow(3), timeout=10)
    took = time.monotonic() - start
    assert r.status_code == 504 and r.json()["error"]["code"] == "scoring_timeout"
    assert took < 2.5  # answered at the timeout (1 s), not after the 3 s sleep
    # The call was interrupted, so its slot is free right away: on the scoring thread it would
    # still be held (sleeping) and this request would get 503 after the 100 ms queue wait.
    r = httpx.post(f"{url}/score", json=FAST)
    assert r.status_code == 200 and r.json() != "swallowed"


def test_after_a_slow_call_the_next_ones_run_on_the_thread(url):
    # The 504 above raised the average: this 0.6 s call runs on the scoring thread, so the event
    # loop answers the liveness probe meanwhile instead of after the call.
    result = {}

    def slow_call():
        result["r"] = httpx.post(f"{url}/score", json=_slow(0.6), timeout=10)

    caller = threading.Thread(target=slow_call)
    caller.start()
    time.sleep(0.15)
    start = time.monotonic()
    assert httpx.get(f"{url}/", timeout=10).status_code == 200
    live_took = time.monotonic() - start
    caller.join()
    assert result["r"].status_code == 200
    assert live_took < 0.3, f"liveness waited {live_took:.2f} s behind the scoring call"
