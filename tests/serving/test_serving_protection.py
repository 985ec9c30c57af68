"""Protection of a real server process over HTTP: keys and rotation, body limit, timeout,
concurrency with queue wait, request ids and traceparent, metrics counting what was sent."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from bundles import SCORE_PY, SEED, make_bundle
from prometheus_client.parser import text_string_to_metric_families

from shipyard.config.models import WorkspaceSettings
from shipyard.deploy.keys import ensure_keys, key_info, keys_file, rotate_key, temporary_key
from shipyard.deploy.local import start_server, stop_server, wait_healthy
from shipyard.workspace import Workspace

pytestmark = pytest.mark.integration

# Sleeps when the first value is negative: -1.5 → 1.5 s (for the timeout and the slots).
SLOW_SCORE_PY = SCORE_PY.replace(
    "    data = np.array(",
    "    import time\n    first = json.loads(raw_data)['data'][0][0]\n"
    "    if first < 0:\n        time.sleep(-first)\n    data = np.array(",
)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    return Workspace.get_or_create(WorkspaceSettings(root=str(tmp_path_factory.mktemp("ws"))))


@pytest.fixture(scope="module")
def server(ws, tmp_path_factory):
    """One server with auth on, a 1 KB body limit, a 1 s timeout and one slot with 100 ms wait."""
    root = tmp_path_factory.mktemp("bundle")
    bundle, model = make_bundle(root, SLOW_SCORE_PY)
    keys = ensure_keys(ws, "prot")
    settings = root.parent / "settings.json"
    settings.write_text(
        json.dumps(
            {
                "auth": True,
                "max_body_mb": 1 / 1024,
                "scoring_timeout_ms": 1000,
                "max_concurrent_requests": 1,
                "max_queue_wait_ms": 100,
                "inline_below_ms": 0,  # always the scoring thread (test_serving_inline.py: inline)
            }
        )
    )
    proc = start_server(
        bundle,
        host="127.0.0.1",
        port=0,
        log_path=root.parent / "server.log",
        deployment_id="prot-1",
        extra_args=["--settings", str(settings), "--keys-file", str(keys_file(ws, "prot"))],
    )
    try:
        wait_healthy(proc.url, 60)
        yield proc.url, keys, model
    finally:
        stop_server(proc.pid)


def post(url: str, key: str | None, payload=SEED, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers.update(kw.pop("headers", {}))
    return httpx.post(f"{url}/score", json=payload, headers=headers, timeout=10, **kw)


def test_keys_are_shown_once_and_stored_hashed(ws, server):
    _, keys, _ = server
    assert set(keys) == {"primary", "secondary"} and keys["primary"] != keys["secondary"]
    assert ensure_keys(ws, "prot") is None  # already there: nothing shown again
    stored = keys_file(ws, "prot").read_text()
    assert keys["primary"] not in stored and keys["secondary"] not in stored
    # Hashes only, readable by the server's own user in a container (see deploy/keys.py).
    assert oct(keys_file(ws, "prot").stat().st_mode & 0o777) == "0o644"
    assert [k["slot"] for k in key_info(ws, "prot")] == ["primary", "secondary"]


def test_no_key_or_wrong_key_is_401_and_probes_stay_open(server):
    url, keys, _ = server
    assert post(url, None).status_code == 401
    r = post(url, "not-a-key")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(f"{url}/").status_code == 200
    assert httpx.get(f"{url}/v2/health/live").status_code == 200


def test_either_key_works_and_predictions_are_right(server):
    url, keys, model = server
    import numpy as np

    for key in keys.values():
        r = post(url, key)
        assert r.status_code == 200
        assert r.json()["result"] == pytest.approx(model.predict(np.array(SEED["data"], float)).tolist())


def test_rotation_takes_effect_without_restart(ws, server):
    url, keys, _ = server
    new = rotate_key(ws, "prot", "secondary")
    assert post(url, keys["secondary"]).status_code == 401
    assert post(url, new).status_code == 200
    assert post(url, keys["primary"]).status_code == 200
    keys["secondary"] = new


def test_temporary_key_works_only_inside_its_block(ws, server):
    url, _, _ = server
    with temporary_key(ws, "prot") as key:
        assert post(url, key).status_code == 200
    assert post(url, key).status_code == 401


def test_body_over_the_limit_is_413(server):
    url, keys, _ = server
    big = {"data": [[0.1] * 10] * 40}  # > 1 KB
    r = post(url, keys["primary"], big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_slow_scoring_is_504_and_the_server_survives(server):
    url, keys, _ = server
    r = post(url, keys["primary"], {"data": [[-1.5] + [0.0] * 9]})
    assert r.status_code == 504 and r.json()["error"]["code"] == "scoring_timeout"
    # The slot is held until the slow call ends; then normal requests pass again.
    import time

    time.sleep(0.8)
    assert post(url, keys["primary"]).status_code == 200


def test_no_slot_within_the_queue_wait_is_503_with_retry_after(server):
    url, keys, _ = server
    slow = {}

    def occupy():
        slow["r"] = post(url, keys["primary"], {"data": [[-0.6] + [0.0] * 9]})

    t = threading.Thread(target=occupy)
    t.start()
    import time

    time.sleep(0.2)
    r = post(url, keys["primary"])
    t.join()
    assert slow["r"].status_code == 200
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["code"] == "overloaded"


def test_request_ids_and_traceparent_are_propagated(server):
    url, keys, _ = server
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    r = post(url, keys["primary"], headers={"x-ms-request-id": "azure-123", "traceparent": tp})
    assert r.headers["x-request-id"] == "azure-123" and r.headers["x-ms-request-id"] == "azure-123"
    assert r.headers["traceparent"] == tp
    generated = post(url, keys["primary"]).headers["x-request-id"]
    assert len(generated) == 32


def test_bad_json_is_400_and_wrong_width_is_422(server):
    url, keys, _ = server
    r = httpx.post(
        f"{url}/score", content=b"{not json", headers={"Authorization": f"Bearer {keys['primary']}"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = post(url, keys["primary"], {"data": [[1, 2, 3]]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "data[0]"


def test_metrics_count_what_was_sent(server):
    url, keys, _ = server

    def score_ok() -> float:
        text = httpx.get(f"{url}/metrics").text
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if (
                    s.name == "shipyard_requests_total"
                    and s.labels.get("route") == "/score"
                    and s.labels.get("status") == "200"
                ):
                    return s.value
        return 0.0

    before = score_ok()
    for _ in range(3):
        assert post(url, keys["primary"]).status_code == 200
    assert score_ok() == before + 3


def test_deleting_an_endpoint_forgets_its_keys(ws):
    from shipyard.deploy.keys import delete_keys

    ensure_keys(ws, "gone")
    assert keys_file(ws, "gone").exists()
    delete_keys(ws, "gone")
    assert key_info(ws, "gone") == [] and not keys_file(ws, "gone").exists()
    assert set(ensure_keys(ws, "gone")) == {"primary", "secondary"}  # a new endpoint: new keys, shown
