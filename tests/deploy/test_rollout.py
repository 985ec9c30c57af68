"""Blue/green for real: nginx, real servers, a load generator in its own process during the switch,
a green that fails its smoke test, and rollback to the previous version."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bundles import SCORE_PY, SEED
from deploy_support import bundle_at, config, deployment_of, make_ws
from tools import require_tool

from shipyard.deploy.endpoints import delete_endpoint, get_deployment, run_smoke_test, start_deployment
from shipyard.deploy.rollout import blue_green, rollback
from shipyard.deploy.traffic import get_endpoint, router
from shipyard.packaging.bundle import Bundle
from shipyard.processes import process_alive
from shipyard.store import utcnow
from shipyard.store.models import BundleRow
from shipyard.workspace import Workspace

pytestmark = pytest.mark.integration

RAISES_PY = SCORE_PY.replace(
    "    data = np.array", "    raise RuntimeError('broken model')\n    data = np.array"
)

# Alternates POST /score and GET / at ~RATE requests/s until STOP exists; writes every outcome.
# Like any HTTP client facing a server that reloads (docs/endpoints.md "The router"), it sends a
# request once more when the keep-alive connection it reused was closed before any answer came
# (httpx: RemoteProtocolError "Server disconnected without sending a response"): a reloading
# nginx worker closes its idle connections, and one that crosses a request in flight never read
# it. Those retries are counted apart; anything else (a 502, a refused or reset connection, an
# error status) is a failure.
LOAD = """
import json, sys, time, pathlib, httpx
url, stop, out, rate = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])
seed = {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}
records, retries, started, i = [], 0, time.monotonic(), 0
def send(client, i):
    if i % 2:
        return client.post(url + "/score", json=seed)
    return client.get(url + "/")
with httpx.Client(trust_env=False, timeout=10) as client:
    while not stop.exists():
        i += 1
        try:
            try:
                r = send(client, i)
            except httpx.RemoteProtocolError as exc:
                if "without sending a response" not in str(exc):
                    raise
                retries += 1
                r = send(client, i)
            version = r.json().get("model_version") if r.status_code == 200 and i % 2 == 0 else None
            records.append([r.status_code, version])
        except Exception as exc:
            records.append([repr(exc), None])
        time.sleep(max(0.0, started + i / rate - time.monotonic()))
json.dump({"records": records, "retries": retries, "duration_s": time.monotonic() - started}, open(out, "w"))
"""


def register(ws: Workspace, bundle: Bundle) -> Bundle:
    """Record the test bundle the way packaging does, so rollback can restart it."""
    with ws.store.session() as s:
        s.add(
            BundleRow(
                id=bundle.id, model_name=bundle.model_name, model_version=bundle.model_version,
                uri=bundle.path, content_hash=bundle.content_hash, manifest=bundle.manifest,
                created_at=utcnow(),
            )
        )  # fmt: skip
    return bundle


@pytest.fixture
def blue(tmp_path: Path) -> Iterator[tuple[Workspace, object]]:
    """Endpoint `ep` serving version 1 in slot blue through the router."""
    require_tool("nginx", "nginx")
    ws = make_ws(tmp_path / "ws")
    b1 = register(ws, bundle_at(tmp_path / "b1", "1"))
    dep = run_smoke_test(ws, start_deployment(ws, b1, config()).id, SEED, 30)
    try:
        yield ws, dep
    finally:
        delete_endpoint(ws, "ep")
        assert router(ws).master_pid() is None
        ws.store.dispose()


def test_blue_green_under_load_has_zero_failures(blue, tmp_path: Path) -> None:
    ws, dep = blue
    url = get_endpoint(ws, "ep").url
    stop, out = tmp_path / "stop", tmp_path / "load.json"
    load = subprocess.Popen([sys.executable, "-c", LOAD, url, str(stop), str(out), "50"])
    try:
        time.sleep(1.0)
        result = blue_green(ws, bundle_at(tmp_path / "b2", "2"), config(), steps=[10, 50, 100], window_s=2.0)
        time.sleep(1.0)
    finally:
        stop.touch()
        load.wait(30)
    assert result.succeeded, result.reason
    data = json.loads(out.read_text())
    statuses = Counter(str(r[0]) for r in data["records"])
    versions = Counter(r[1] for r in data["records"] if r[1])
    total, failures = len(data["records"]), sum(n for s, n in statuses.items() if s != "200")
    print(
        f"\nzero-downtime: {total} requests in {data['duration_s']:.1f} s, {failures} failures, "
        f"{data['retries']} sent again after an idle close, versions {dict(versions)}"
    )
    assert failures == 0, statuses
    # One client connection: each router reload (one per step, one when blue stops) can close it
    # at most once.
    assert data["retries"] <= len(result.steps) + 1
    assert total >= 200 and set(versions) == {"1", "2"}
    assert [s["green_percent"] for s in result.steps] == [10, 50, 100]
    assert all(s["errors"] == 0 and s["requests"] > 0 for s in result.steps)
    ep = get_endpoint(ws, "ep")
    assert ep.traffic == {"green": 100} and ep.url == url == result.url
    assert get_deployment(ws, dep.id).state == "replaced" and not process_alive(dep.pid)
    assert get_deployment(ws, result.green).state == "active"


def test_green_failing_its_smoke_test_leaves_blue_with_everything(blue, tmp_path: Path) -> None:
    ws, dep = blue
    cfg = config(smoke_test={"timeout_s": 2})
    result = blue_green(ws, bundle_at(tmp_path / "bad", "2", RAISES_PY), cfg, window_s=0.5)
    assert not result.succeeded and "smoke test" in result.reason and "500" in result.reason
    green = get_deployment(ws, result.green)
    assert green.state == "failed" and not process_alive(green.pid)
    ep = get_endpoint(ws, "ep")
    assert ep.traffic == {"blue": 100} and set(ep.slots) == {"blue"}
    with httpx.Client(trust_env=False, timeout=10) as client:
        assert Counter(deployment_of(client, ep.url) for _ in range(20)) == {dep.id: 20}


def test_green_with_errors_under_traffic_is_rolled_back(blue, tmp_path: Path) -> None:
    ws, dep = blue
    # Passes the smoke sample (2 rows) but fails single-row requests: found only under traffic.
    flaky = SCORE_PY.replace(
        "    data = np.array",
        "    if len(json.loads(raw_data)['data']) == 1: raise RuntimeError('x')\n    data = np.array",
    )
    url = get_endpoint(ws, "ep").url
    stop, out = tmp_path / "stop", tmp_path / "load.json"
    load = subprocess.Popen([sys.executable, "-c", LOAD, url, str(stop), str(out), "50"])
    try:
        result = blue_green(
            ws, bundle_at(tmp_path / "flaky", "2", flaky), config(), steps=[50, 100], window_s=2.0
        )
    finally:
        stop.touch()
        load.wait(30)
    assert not result.succeeded and "at 50 %" in result.reason and "5xx" in result.reason
    assert result.steps[0]["errors"] > 0
    assert get_endpoint(ws, "ep").traffic == {"blue": 100}
    assert get_deployment(ws, result.green).state == "failed"
    assert get_deployment(ws, dep.id).state == "active" and process_alive(dep.pid)


def test_rollback_returns_to_the_previous_version(blue, tmp_path: Path) -> None:
    ws, v1 = blue
    b2 = register(ws, bundle_at(tmp_path / "b2", "2"))
    assert blue_green(ws, b2, config(), steps=[100], window_s=0.2).succeeded
    url = get_endpoint(ws, "ep").url
    with httpx.Client(trust_env=False, timeout=10) as client:
        assert client.get(url + "/").json()["model_version"] == "2"
        assert not process_alive(v1.pid)  # blue was stopped: rollback restarts it from its bundle
        back = rollback(ws, "ep")
        assert back["deployment_id"] == v1.id and back["url"] == url
        answer = client.get(url + "/").json()
        assert answer["model_version"] == "1" and answer["deployment_id"] == v1.id
    assert get_deployment(ws, v1.id).state == "active"
    assert get_deployment(ws, back["from_deployment_id"]).state == "replaced"
