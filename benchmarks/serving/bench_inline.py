"""How soon inline scoring answers a hanging call, and how long a health check waits behind a slow
one: the times behind tests/serving/test_serving_inline.py (which checks where calls run, from
`shipyard_scoring_calls_total`, never how long they take).

One server at a time (`python -m shipyard.serving`, one worker, `scoring_timeout_ms` 1000,
`max_queue_wait_ms` 100), inline scoring on (`inline_below_ms` 2, the default) and off (0), the
diabetes Ridge bundle of bench_serving.py with a score.py that sleeps -x seconds when the first
value x is negative. After five fast calls (the first three run on the thread):

- hanging call: a call that sleeps 3 s; seconds until its answer, and the answer of the next fast
  call (200 when the slot was freed at the timeout, 503 while a thread still sleeps in it);
- liveness: two 0.6 s calls in turn, each with `GET /` sent 0.15 s into it; how long each probe
  waited. Inline, the first runs on the event loop (the probe waits for it) and raises the
  average, so the second runs on the thread (the probe is answered at once).

Run: `.venv/bin/python benchmarks/serving/bench_inline.py` (prints a table; four server starts,
a minute or so).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from servers import BIN, ROOT, free_port, http, prepare, stop, wait_healthy  # noqa: E402

FAST = json.dumps({"data": [[0.01] * 10]}).encode()


def slow(seconds: float) -> bytes:
    return json.dumps({"data": [[-seconds] + [0.0] * 9]}).encode()


def slow_bundle(work: Path) -> Path:
    """bench_serving.py's bundle, its score.py sleeping -x s for a negative first value x."""
    prepare(work)
    script = (ROOT / "examples" / "diabetes" / "score.py").read_text()
    sleeping = script.replace("import json\n", "import json\nimport time\n", 1).replace(
        "    rows = _parse(raw_data)\n",
        "    rows = _parse(raw_data)\n    if rows[0][0] < 0:\n        time.sleep(-rows[0][0])\n",
        1,
    )
    assert sleeping.count("time.sleep") == 1, "examples/diabetes/score.py changed: update slow_bundle"
    (work / "bundle" / "score.py").write_text(sleeping)
    return work / "bundle"


def timed(method: str, url: str, body: bytes | None = None) -> tuple[int, float]:
    start = time.perf_counter()
    status, _ = http(method, url, body, timeout=10)
    return status, time.perf_counter() - start


def probe_during(url: str, body: bytes) -> float:
    """Seconds `GET /` waited, sent 0.15 s into a scoring call of `body`."""
    caller = threading.Thread(target=http, args=("POST", f"{url}/score", body), kwargs={"timeout": 10})
    caller.start()
    time.sleep(0.15)
    status, waited = timed("GET", f"{url}/")
    caller.join()
    assert status == 200, status
    return waited


@contextmanager
def server(bundle: Path, settings: Path) -> Iterator[str]:
    """A warmed-up server (five fast calls: the last two ran inline when inline is on); its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(BIN / "python"), "-m", "shipyard.serving", "--bundle", str(bundle), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--settings", str(settings)]
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        problem = wait_healthy(proc, url + "/", 120)
        assert problem is None, problem
        for _ in range(5):
            assert http("POST", f"{url}/score", FAST)[0] == 200
        yield url
    finally:
        stop(proc)


def measure(bundle: Path, work: Path, inline_below_ms: float) -> dict[str, float | int]:
    settings = work / f"inline-{inline_below_ms:g}.json"
    limits = {"scoring_timeout_ms": 1000, "max_queue_wait_ms": 100, "max_concurrent_requests": 1}
    settings.write_text(json.dumps({"auth": False, "inline_below_ms": inline_below_ms, **limits}))
    with server(bundle, settings) as url:
        hang_status, hang_s = timed("POST", f"{url}/score", slow(3))
        next_status, _ = timed("POST", f"{url}/score", FAST)
    with server(bundle, settings) as url:
        first, second = probe_during(url, slow(0.6)), probe_during(url, slow(0.6))
    return {
        "hang_status": hang_status,
        "hang_s": hang_s,
        "next_status": next_status,
        "probe1_ms": first * 1000,
        "probe2_ms": second * 1000,
    }


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-inline-") as tmp:
        work = Path(tmp)
        bundle = slow_bundle(work)
        rows = [(below, measure(bundle, work, below)) for below in (2, 0)]
    print("| inline_below_ms | 3 s call: answer after | next call | probe wait, 1st 0.6 s call | 2nd |")
    print("|---|---|---|---|---|")
    for below, r in rows:
        print(
            f"| {below:g} | {r['hang_status']} after {r['hang_s']:.2f} s | {r['next_status']} "
            f"| {r['probe1_ms']:.0f} ms | {r['probe2_ms']:.0f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
