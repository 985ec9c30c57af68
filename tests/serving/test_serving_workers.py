"""Several worker processes of a real server: they are children of the server process, all serve,
/metrics counts the requests of every worker, and SIGTERM drains a request in flight before the
server exits and the port closes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from bundles import SCORE_PY, SEED, make_bundle, serving
from prometheus_client.parser import text_string_to_metric_families

from shipyard.deploy.local import stop_server

pytestmark = pytest.mark.integration

WORKERS = 2
# Sleeps when the first value is negative: -1.5 → 1.5 s (a request still in flight at SIGTERM).
SLOW_SCORE_PY = SCORE_PY.replace(
    "    data = np.array(",
    "    import time\n    first = json.loads(raw_data)['data'][0][0]\n"
    "    if first < 0:\n        time.sleep(-first)\n    data = np.array(",
)


def children_of(pid: int) -> list[int]:
    """Processes whose parent is `pid`, from /proc (no psutil)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == str(pid) and fields.get("State", "").split()[0] not in "ZX":
            found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_for(predicate, timeout_s: float = 30.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def requests_by_route(url: str, route: str) -> dict[str, float]:
    """shipyard_requests_total of one route, by status."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for s in family.samples:
            if s.name == "shipyard_requests_total" and s.labels.get("route") == route:
                out[s.labels["status"]] = out.get(s.labels["status"], 0.0) + s.value
    return out


@pytest.fixture
def server(tmp_path):
    bundle, model = make_bundle(tmp_path / "bundle", SLOW_SCORE_PY)
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    # Our own multiprocess folder, so that the test can see which worker wrote what.
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with serving(bundle, tmp_path, {"auth": False, "workers": WORKERS}, "workers-1", env=env) as proc:
        # Readiness of one worker says nothing of the other: wait until both are up.
        assert wait_for(lambda: len(children_of(proc.pid)) == WORKERS, 30), children_of(proc.pid)
        yield proc, model, metrics_dir


def test_two_workers_are_children_of_the_server_and_all_requests_are_counted(server):
    proc, model, metrics_dir = server
    workers = children_of(proc.pid)
    assert len(workers) == WORKERS and proc.pid not in workers
    for pid in workers:
        assert b"shipyard.serving" in Path(f"/proc/{pid}/cmdline").read_bytes()

    expected = model.predict(np.array(SEED["data"], dtype=float)).tolist()
    for _ in range(50):
        # A new connection each time: the kernel hands each to whichever worker accepts first.
        r = httpx.post(f"{proc.url}/score", json=SEED, timeout=10)
        assert r.status_code == 200
        assert r.json()["result"] == pytest.approx(expected)

    # Multiprocess mode: a scrape of any worker reports the requests of all of them.
    for _ in range(3):
        assert requests_by_route(proc.url, "/score") == {"200": 50.0}
    # Each worker wrote its own counter file: only the workers scored, and they scored the 50.
    files = {int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob("counter_*.db")}
    assert files <= set(workers) and files, files


def test_sigterm_drains_the_request_in_flight_then_the_port_closes(server):
    proc, model, _ = server
    workers = children_of(proc.pid)
    slow_payload = {"data": [[-1.5] + [0.0] * 9]}
    result: dict[str, object] = {}

    def slow() -> None:
        try:
            result["response"] = httpx.post(f"{proc.url}/score", json=slow_payload, timeout=30)
        except httpx.HTTPError as exc:  # pragma: no cover - shown on failure only
            result["error"] = repr(exc)

    caller = threading.Thread(target=slow)
    caller.start()
    time.sleep(0.4)  # the slow request is being scored
    stopper = threading.Thread(target=stop_server, args=(proc.pid,), kwargs={"timeout_s": 20})
    started = time.monotonic()
    stopper.start()
    caller.join(30)
    stopper.join(30)
    assert not caller.is_alive() and not stopper.is_alive()

    assert "error" not in result, result.get("error")
    response = result["response"]
    assert isinstance(response, httpx.Response)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == pytest.approx(
        model.predict(np.array(slow_payload["data"], dtype=float)).tolist()
    )
    # Drained, not killed: SIGKILL would have come only after the 20 s timeout.
    assert time.monotonic() - started < 15
    assert not alive(proc.pid)
    assert wait_for(lambda: not any(alive(pid) for pid in workers), 10), workers
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{proc.url}/", timeout=2)
