"""The endpoint router for real: nginx in front of real scoring servers, traffic split by weight,
mirror, reload while serving, and refused changes that leave the running router as it was."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bundles import SEED
from deploy_support import bundle_at, config, deployment_of, make_ws
from tools import require_tool

from shipyard.deploy.endpoints import delete_endpoint, list_endpoints, run_smoke_test, start_deployment
from shipyard.deploy.traffic import get_endpoint, router, set_traffic, traffic_history
from shipyard.errors import UsageError
from shipyard.workspace import Workspace

pytestmark = pytest.mark.integration


def scored_lines(log: Path) -> int:
    return sum(1 for line in log.read_text().splitlines() if line.startswith("{") and '"/score"' in line)


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[tuple[Workspace, dict]]:
    """A workspace whose endpoint `ep` has two live deployments: blue (active, 100 %) and green."""
    require_tool("nginx", "nginx")
    ws = make_ws(tmp_path / "ws")
    cfg = config()
    blue = start_deployment(ws, bundle_at(tmp_path / "b1", "1"), cfg)
    blue = run_smoke_test(ws, blue.id, SEED, 30)
    green = start_deployment(ws, bundle_at(tmp_path / "b2", "2"), cfg)
    try:
        yield ws, {"blue": blue, "green": green}
    finally:
        delete_endpoint(ws, "ep")
        assert router(ws).master_pid() is None, "nginx still running after the last endpoint was deleted"
        ws.store.dispose()


def test_replace_routes_everything_to_the_new_slot(endpoint) -> None:
    ws, deps = endpoint
    blue, green = deps["blue"], deps["green"]
    assert (blue.slot, green.slot) == ("blue", "green")
    ep = get_endpoint(ws, "ep")
    assert blue.endpoint_url == ep.url and ep.url != blue.url and ep.traffic == {"blue": 100}
    with httpx.Client(trust_env=False, timeout=10) as client:
        seen = Counter(deployment_of(client, ep.url) for _ in range(50))
        assert seen == {blue.id: 50}
        scored = client.post(ep.url + "/score", json=SEED)
        assert scored.status_code == 200 and len(scored.json()["result"]) == 2
    [row] = list_endpoints(ws)
    assert row["url"] == ep.url and row["traffic"] == {"blue": 100}
    assert row["slots"] == {"blue": blue.id, "green": green.id}


def test_weights_split_traffic_within_tolerance(endpoint) -> None:
    ws, deps = endpoint
    url = set_traffic(ws, "ep", {"blue": 70, "green": 30}).url
    with httpx.Client(trust_env=False, timeout=10) as client:
        seen = Counter(deployment_of(client, url) for _ in range(400))
    green_share = seen[deps["green"].id] / 400
    print(f"70/30 split over 400 requests: green {green_share:.1%}")
    assert seen[deps["blue"].id] + seen[deps["green"].id] == 400
    assert 0.22 <= green_share <= 0.38  # 30 % ± 8 points (binomial sd is 2.3 points)

    set_traffic(ws, "ep", {"blue": 0, "green": 100})
    with httpx.Client(trust_env=False, timeout=10) as client:
        assert Counter(deployment_of(client, url) for _ in range(50)) == {deps["green"].id: 50}
    assert [h["weights"] for h in traffic_history(ws, "ep")[:2]] == [
        {"blue": 0, "green": 100},
        {"blue": 70, "green": 30},
    ]


def test_bad_weights_are_refused_and_the_router_is_untouched(endpoint) -> None:
    ws, deps = endpoint
    conf = router(ws).conf
    before, pid = conf.read_text(), router(ws).master_pid()
    with pytest.raises(UsageError, match="sum to 90"):
        set_traffic(ws, "ep", {"blue": 60, "green": 30})
    with pytest.raises(UsageError, match="red.*no live deployment"):
        set_traffic(ws, "ep", {"blue": 50, "red": 50})
    with pytest.raises(UsageError, match="whole percent"):
        set_traffic(ws, "ep", {"blue": 150, "green": -50})
    assert conf.read_text() == before and router(ws).master_pid() == pid
    assert get_endpoint(ws, "ep").traffic == {"blue": 100}
    with httpx.Client(trust_env=False, timeout=10) as client:
        assert deployment_of(client, get_endpoint(ws, "ep").url) == deps["blue"].id


def test_reload_keeps_serving(endpoint) -> None:
    ws, deps = endpoint
    url = get_endpoint(ws, "ep").url
    statuses: Counter[int] = Counter()
    with httpx.Client(trust_env=False, timeout=10) as client:
        for i in range(10):
            set_traffic(ws, "ep", {"blue": 50, "green": 50} if i % 2 else {"blue": 100})
            for _ in range(10):
                statuses[client.post(url + "/score", json=SEED).status_code] += 1
    assert statuses == {200: 100}
    assert router(ws).generation() >= 11


def test_mirror_copies_a_share_to_another_slot(endpoint) -> None:
    ws, deps = endpoint
    url = set_traffic(ws, "ep", {"blue": 100}, {"green": 100}).url
    green_log = Path(deps["green"].log_path)
    before = scored_lines(green_log)
    with httpx.Client(trust_env=False, timeout=10) as client:
        for _ in range(20):
            response = client.post(url + "/score", json=SEED)
            assert response.status_code == 200
    assert get_endpoint(ws, "ep").mirror == {"green": 100}

    time.sleep(1.5)  # access lines are written in batches
    assert scored_lines(green_log) - before == 20  # every request copied, answers discarded
