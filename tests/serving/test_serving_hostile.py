"""Hostile requests to real server processes: bodies that cost more to parse than they weigh, bodies
that once crashed an error handler, connections that never finish, and the health answer.

The property test enumerates the app's own routes (a route added later is covered without
remembering to) and sends the hostile bodies, content types, headers and query strings of
tests/fuzz_payloads.py to each: never a 5xx but the documented 503/504, every error in the route's
protocol's JSON shape, and the server still answers afterwards. The counts it prints are the
ones in docs/security.md.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections import Counter
from urllib.parse import quote

import httpx
import pytest
from bundles import SEED, make_bundle, serving
from fuzz_payloads import (
    SURROGATES,
    check_hostile,
    hostile_bodies,
    hostile_content_types,
    hostile_headers,
    hostile_queries,
    nested,
    row_body,
    wide_csv,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shipyard.serving.app import create_app
from shipyard.serving.server.auth import hash_key

pytestmark = pytest.mark.integration

KEY = "hostile-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
# Short timeouts, a small connection cap and element bound: the hostile cases cost little to run.
AZUREML_SETTINGS = {
    "auth": True,
    "header_timeout_s": 1.5,
    "body_timeout_s": 1.5,
    "max_connections": 48,
    "max_body_elements": 50_000,
}
PYFUNC_SETTINGS = {"auth": False, "max_queue_wait_ms": 200, "max_body_elements": 50_000}
# Per route and server; SHIPYARD_HOSTILE_EXAMPLES=N runs N random ones (new on every run).
EXAMPLES = int(os.environ.get("SHIPYARD_HOSTILE_EXAMPLES", "12"))
HOSTILE = settings(
    deadline=None,
    max_examples=EXAMPLES,
    derandomize="SHIPYARD_HOSTILE_EXAMPLES" not in os.environ,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def azureml(tmp_path_factory):
    """The example's score.py bundle, auth on, short header/body timeouts, 48 connections at most."""
    root = tmp_path_factory.mktemp("hostile-azureml")
    bundle, _ = make_bundle(root / "bundle")
    keys = root / "keys.json"
    keys.write_text(json.dumps({"primary": hash_key(KEY)}))
    with serving(bundle, root, AZUREML_SETTINGS, "hostile-azureml", ["--keys-file", str(keys)]) as proc:
        yield proc, bundle


@pytest.fixture(scope="module")
def pyfunc(tmp_path_factory):
    """An MLflow bundle whose signature is an int64 tensor [-1, 10] (no score.py), auth off."""
    import logging

    import mlflow.models
    import mlflow.sklearn
    import numpy as np
    from sklearn.linear_model import Ridge

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    root = tmp_path_factory.mktemp("hostile-pyfunc")
    x = np.random.default_rng(2).integers(0, 100, size=(40, 10))
    bundle = root / "bundle"
    mlflow.sklearn.save_model(
        Ridge().fit(x, x @ np.arange(10)),
        str(bundle / "model"),
        signature=mlflow.models.infer_signature(x, x @ np.arange(10.0)),
        serialization_format="pickle",
    )
    manifest = {"flavor": "pyfunc", "model_name": "ints", "model_version": "2", "model_dir": "model"}
    (bundle / "manifest.json").write_text(json.dumps(manifest | {"entry_script": None}))
    with serving(bundle, root, PYFUNC_SETTINGS, "hostile-pyfunc") as proc:
        yield proc, bundle


def post(
    url: str, path: str, body: bytes, content_type: str = "application/json", **headers
) -> httpx.Response:
    return httpx.post(
        url + path,
        content=body,
        headers={"content-type": content_type, **headers},
        timeout=30,
        trust_env=False,
    )


# -- parse cost: depth, surrogates, huge integers, wide tables -----------------------------------
SCORING = [("/score", "azure"), ("/invocations", "mlflow"), ("/v2/models/ints/infer", "v2")]


@pytest.mark.parametrize(("path", "protocol"), SCORING)
def test_json_nested_1100_levels_is_400_in_the_protocols_shape(pyfunc, path, protocol):
    body = nested(1100, "inputs")  # 2.2 KB: once a RecursionError, 500
    r = post(pyfunc[0].url, path, body)
    assert r.status_code == 400, r.text
    message = {
        "azure": lambda b: b["error"]["message"],
        "mlflow": lambda b: b["message"],
        "v2": lambda b: b["error"],
    }
    assert "1101 levels deep" in message[protocol](r.json()) and "max_json_depth" in r.text


def test_json_nested_deep_is_400_on_an_azureml_bundle(azureml):
    proc, _ = azureml
    r = post(proc.url, "/score", nested(1100, "objects"), **AUTH)
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_deep"


def test_lone_surrogate_at_invocations_is_a_clean_400(pyfunc):
    r = post(pyfunc[0].url, "/invocations", b'{"inputs": "\\ud800"}')
    assert r.status_code == 400, r.text  # was 500: the error handler could not encode its message
    body = r.json()
    assert body["error_code"] == "BAD_REQUEST" and "\\ud800" in body["message"]


def test_400_digit_integer_on_an_mlflow_bundle_is_a_4xx(pyfunc):
    url = pyfunc[0].url
    big = "9" * 400
    score = post(url, "/score", row_body("data", big))
    assert score.status_code == 422, score.text  # was 500 (OverflowError); as the Azure ML bundle
    assert score.json()["error"]["code"] == "invalid_input"
    invocations = post(url, "/invocations", row_body("inputs", big))
    assert invocations.status_code == 400 and invocations.json()["error_code"] == "BAD_REQUEST"


def test_wide_csv_is_413_before_it_takes_the_scoring_slot(pyfunc):
    """20,001 columns (80 KB) once held the one scoring slot for seconds: normal requests got 503."""
    url = pyfunc[0].url
    normal = json.dumps({"inputs": [[1] * 10]}).encode()
    answers: list[int] = []

    def send_normal() -> None:
        answers.append(post(url, "/invocations", normal).status_code)

    started = time.perf_counter()
    threads = [threading.Thread(target=send_normal) for _ in range(8)]
    wide = [post(url, "/invocations", wide_csv(20_001), "text/csv") for _ in range(3)]
    for t in threads:
        t.start()
    wide += [post(url, "/invocations", wide_csv(20_001), "text/csv") for _ in range(3)]
    for t in threads:
        t.join()
    assert [r.status_code for r in wide] == [413] * 6
    assert "20001 columns" in wide[0].json()["message"] and "max_columns" in wide[0].json()["message"]
    assert answers == [200] * 8
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("shape", ["dataframe_split", "dataframe_records"])
def test_wide_json_table_is_413(pyfunc, shape):
    names = [f"c{i}" for i in range(5000)]
    value = (
        {"columns": names, "data": [[1] * 5000]} if shape == "dataframe_split" else [dict.fromkeys(names, 1)]
    )
    r = post(pyfunc[0].url, "/invocations", json.dumps({shape: value}).encode())
    assert r.status_code == 413 and r.json()["field"] == shape


def test_body_with_more_values_than_the_bound_is_413(pyfunc):
    r = post(pyfunc[0].url, "/score", json.dumps({"data": [[1] * 10] * 6000}).encode())
    assert r.status_code == 413 and "max_body_elements" in r.json()["error"]["message"]
    assert post(pyfunc[0].url, "/score", json.dumps({"data": [[1] * 10] * 4000}).encode()).status_code == 200


# -- slow and excess connections -----------------------------------------------------------------
def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def connect(url: str) -> socket.socket:
    host, port = re.match(r"http://([^:]+):(\d+)", url).groups()
    return socket.create_connection((host, int(port)), timeout=5)


def answer_of(sock: socket.socket) -> bytes:
    """What the server sent before it closed the connection (b"" if it only closed it)."""
    sock.settimeout(5)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def test_slow_headers_are_cut_and_normal_requests_are_served_meanwhile(azureml):
    proc, _ = azureml
    baseline = open_fds(proc.pid)
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    slow = [connect(proc.url) for _ in range(40)]
    stop = threading.Event()

    def trickle() -> None:  # one header byte per connection every 0.2 s: never a whole request
        for i in range(len(request)):
            if stop.is_set():
                return
            for s in slow:
                try:
                    s.send(request[i : i + 1])
                except OSError:
                    pass
            time.sleep(0.2)

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        time.sleep(0.5)
        assert open_fds(proc.pid) >= baseline + 40  # they are held open
        r = httpx.post(proc.url + "/score", json=SEED, headers=AUTH, timeout=5)
        assert r.status_code == 200  # served while they trickle
        answers = [answer_of(s) for s in slow]  # each closed after header_timeout_s (1.5 s)
    finally:
        stop.set()
        sender.join()
        for s in slow:
            s.close()
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers[:3]
    assert b"header" in answers[0] and b"1.5 s" in answers[0]
    assert open_fds(proc.pid) <= baseline + 2  # given back
    assert httpx.get(proc.url + "/", timeout=5).status_code == 200


def test_slow_body_is_408_and_the_connection_closed(azureml):
    proc, _ = azureml
    s = connect(proc.url)
    head = "POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += f"Authorization: Bearer {KEY}\r\nContent-Length: 1000\r\n\r\n"
    s.sendall(head.encode() + b'{"data": ')
    started = time.perf_counter()
    answer = answer_of(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 408 ") and b"body did not arrive within 1.5 s" in answer
    assert 1.2 < time.perf_counter() - started < 4
    assert httpx.post(proc.url + "/score", json=SEED, headers=AUTH, timeout=5).status_code == 200


def test_connections_over_the_cap_get_503_at_once(azureml):
    proc, _ = azureml
    held = [connect(proc.url) for _ in range(48)]
    try:
        time.sleep(0.3)
        extra = connect(proc.url)
        answer = answer_of(extra)  # answered and closed at once, not after the header timeout
        extra.close()
        assert answer.startswith(b"HTTP/1.1 503 ") and b"max_connections" in answer
        assert b"retry-after: 1" in answer.lower()
    finally:
        for s in held:
            s.close()
    time.sleep(0.3)
    assert httpx.post(proc.url + "/score", json=SEED, headers=AUTH, timeout=5).status_code == 200


def test_headers_over_64_kib_are_431(azureml):
    proc, _ = azureml
    s = connect(proc.url)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"p" * 70_000 + b"\r\n")
    answer = answer_of(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 431 ")


# -- the health answer ---------------------------------------------------------------------------
def test_health_is_open_but_details_need_the_key(azureml):
    proc, _ = azureml
    for path in ("/", "/health"):
        open_answer = httpx.get(proc.url + path, timeout=5)
        assert open_answer.status_code == 200 and open_answer.json() == {"status": "healthy"}
        assert httpx.get(proc.url + path, headers={"Authorization": "Bearer wrong"}).json() == {
            "status": "healthy"
        }
        keyed = httpx.get(proc.url + path, headers=AUTH, timeout=5).json()
        assert keyed == {
            "status": "healthy",
            "model_name": "diabetes-ridge",
            "model_version": "3",
            "deployment_id": "hostile-azureml",
        }
    # A prober that names the deployment it started gets its id back, and nothing else.
    named = httpx.get(proc.url + "/", headers={"X-Shipyard-Deployment-Id": "hostile-azureml"}).json()
    assert named == {"status": "healthy", "deployment_id": "hostile-azureml"}
    guessed = httpx.get(proc.url + "/", headers={"X-Shipyard-Deployment-Id": "hostile"}).json()
    assert guessed == {"status": "healthy"}


def test_health_of_an_mlflow_bundle_is_json_and_ping_stays_mlflows(pyfunc):
    url = pyfunc[0].url
    assert httpx.get(url + "/health").json() == {
        "status": "healthy",
        "model_name": "ints",
        "model_version": "2",
        "deployment_id": "hostile-pyfunc",
    }  # auth off: what every route tells anyway
    ping = httpx.get(url + "/ping")
    assert ping.status_code == 200 and ping.text == "\n"


# -- every route, every hostile body ------------------------------------------------------------
def routes_of(bundle, values: dict[str, str]) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, path parameters filled from `values`."""
    app = create_app(bundle)
    found = []
    for route in app.routes:
        path = route.path
        for name in route.param_convertors:
            path = path.replace("{" + name + "}", values[name])
        found += [(method, path) for method in sorted(route.methods or ["GET"]) if method != "HEAD"]
    return found


@pytest.mark.parametrize("server", ["azureml", "pyfunc"])
def test_every_route_answers_hostile_requests_without_5xx(server, request):
    proc, bundle = request.getfixturevalue(server)
    manifest = json.loads((bundle / "manifest.json").read_text())
    params = {"model_name": manifest["model_name"], "model_version": manifest["model_version"]}
    routes = routes_of(bundle, params)
    assert len(routes) >= 17 and ("POST", "/score") in routes and ("POST", "/invocations") in routes
    auth = AUTH if server == "azureml" else {}
    statuses: Counter[int] = Counter()
    client = httpx.Client(timeout=30, trust_env=False)

    def hostile_requests_to(method: str, path: str) -> None:
        @HOSTILE
        # The audit's findings, on every route whatever the draw; then drawn ones.
        @example(method, nested(1100, "inputs"), "application/json", {}, "", "")
        @example(method, SURROGATES[0], "application/json", {}, "", "")
        @example(method, row_body("data", "9" * 400), "application/json", {}, "", "")
        @example(method, row_body("inputs", "9" * 400), "application/json", {}, "", "")
        @example(method, wide_csv(20_001), "text/csv", {}, "", "")
        @given(
            st.sampled_from([method, method, method, "GET", "PUT"]),  # mostly the route's method
            hostile_bodies,
            hostile_content_types,
            hostile_headers,
            hostile_queries,
            st.sampled_from(
                ["", "", "/%2e%2e/x", "%00", quote("\ud800", errors="surrogatepass"), "x" * 3000]
            ),
        )
        def run(verb, body, content_type, extra, query, param_suffix):
            target = path
            if param_suffix and "/models/" in path:  # a hostile model name or version
                target = path.replace(params["model_name"], params["model_name"] + param_suffix, 1)
            headers = {**auth, **extra} | ({"content-type": content_type} if content_type else {})
            r = client.request(verb, proc.url + target + query, content=body, headers=headers)
            statuses[r.status_code] += 1
            check_hostile(r, target)

        run()

    with client:
        for method, path in routes:
            hostile_requests_to(method, path)
    after = httpx.get(proc.url + "/", timeout=5)
    assert after.status_code == 200 and after.json()["status"] == "healthy"
    fives = sum(n for code, n in statuses.items() if code >= 500)
    print(f"\n{server}: {sum(statuses.values())} hostile requests on {len(routes)} routes, 5xx seen: {fives}")
    print(f"{server}: statuses {dict(sorted(statuses.items()))}")
    assert {200, 400, 404, 405} <= set(statuses)  # reached the parsers and the routing, not only one
