"""The whole loop on the diabetes example, through the CLI, in one workspace.

One story in steps (a module-scoped workspace): v1 is registered and served → a re-run is fully
cached → worse candidates are rejected → a better one becomes v2 and replaces the server →
hand-off files, --from and --no-cache → a run killed mid-training leaves the registry as it was
and the next run registers v3 → the endpoint is deleted. Each step acts, then checks what it
should see at that point of the story. There is one test per step, and a test first runs the steps
before its own that have not run yet (each step runs once per module), so any test runs alone or
in any order, and the pipeline runs only as often as the story needs.

Values are checked against an independent fit (same split as train.py) and an independent MLflow
client, not only against what Shipyard reports about itself.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

MODEL = "diabetes-ridge"
ALL_STEPS = ["data_check", "train", "evaluate", "register", "package", "deploy", "smoke_test"]
AFTER_GATE = ["register", "package", "deploy", "smoke_test"]


# The steps of the story, in order (see `step`).
STORY: list[Callable[..., None]] = []


def step(check: Callable[..., None]) -> Callable[..., None]:
    """Add `check` as the next step of the story. It takes `flow` and fixtures of module or session
    scope by name, acts on the flow and asserts what it should see then."""
    STORY.append(check)
    return check


@dataclass
class Flow:
    proj: Path
    ws: Path
    cli: Callable[..., Any]
    fixtures: dict[str, Any]  # what the steps take (module or session scope), by name
    state: dict[str, Any] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)  # steps that ran and passed
    broken: str | None = None  # the step that failed: the story cannot go on past it

    def reach(self, target: Callable[..., None]) -> None:
        """Run every step up to and including `target` that has not run yet, in order."""
        for check in STORY[: STORY.index(target) + 1]:
            name = check.__name__
            if name in self.done:
                continue
            if self.broken is not None:  # its own test reported how
                pytest.fail(f"step {self.broken} of the story failed (see its first failure)", pytrace=False)
            self.broken = name
            available = {"flow": self, **self.fixtures}
            check(**{p: available[p] for p in inspect.signature(check).parameters})
            self.broken = None
            self.done.add(name)

    def run(self, *args: Any):
        """`shipyard run --output json` on the project and workspace of this flow."""
        return self.cli("run", "--project", self.proj, "--workspace", self.ws, "--output", "json", *args)

    def cmd(self, *args: Any):
        """Any other command, as JSON, on this flow's project and workspace."""
        return self.cli(*args, "--project", self.proj, "--workspace", self.ws, "--output", "json")


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def flow(request, tmp_path_factory, copy_project, cli, teardown_endpoints):
    root = tmp_path_factory.mktemp("flow")
    taken = {p for check in STORY for p in inspect.signature(check).parameters} - {"flow"}
    fixtures = {name: request.getfixturevalue(name) for name in sorted(taken)}
    f = Flow(proj=copy_project(root / "project"), ws=root / "ws", cli=cli, fixtures=fixtures)
    yield f
    teardown_endpoints(f.ws)


def statuses(summary: dict) -> dict[str, str]:
    return {s["step"]: s["status"] for s in summary["steps"]}


def ok(result) -> dict:
    assert result.code == 0, f"exit {result.code}\n{result.out}\n{result.err}"
    return result.json()


def version_numbers(client) -> list[int]:
    return sorted(int(v.version) for v in client.search_model_versions(f"name = '{MODEL}'"))


def production(client) -> str:
    return str(client.get_model_version_by_alias(MODEL, "production").version)


def served(http, url: str) -> dict:
    response = http.get(url + "/")
    assert response.status_code == 200, response.text
    return response.json()


def predictions(http, url: str, payload: dict) -> list[float]:
    response = http.post(url + "/score", json=payload)
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert len(result) == len(payload["data"])
    return result


@step
def first_run_registers_v1_promotes_and_serves_it(
    flow, http, query, mlflow_client, reference_model, seed_payload, pid_is_alive
):
    s = ok(flow.run())

    assert s["status"] == "succeeded" and s["error"] is None
    assert [x["step"] for x in s["steps"]] == ALL_STEPS
    assert set(statuses(s).values()) == {"succeeded"} and s["cached_steps"] == []
    data = (flow.proj / "data" / "diabetes.csv").read_bytes()
    assert s["data_check"] == {"passed": True, "rows": 442, "dataset_hash": hashlib.sha256(data).hexdigest()}

    mse, model = reference_model(0.5)
    assert s["run"]["metrics"]["mse"] == pytest.approx(mse, rel=1e-9)
    assert s["run"]["params"]["alpha"] == "0.5"
    assert s["gate"]["verdict"] == "passed"
    assert s["gate"]["champion_version"] is None and s["gate"]["champion_value"] is None
    assert s["gate"]["candidate_value"] == pytest.approx(mse, rel=1e-9)
    assert s["model"]["name"] == MODEL and s["model"]["version"] == "1" and s["model"]["created"] is True
    assert s["model"]["aliases"] == ["production", "staging"]

    client = mlflow_client(flow.ws)
    assert version_numbers(client) == [1] and production(client) == "1"

    e = s["endpoint"]
    assert e["url"].startswith("http://127.0.0.1:") and e["smoke_test"] == "passed"
    assert f"{e['url']}/score" in e["curl"] and json.dumps(seed_payload, separators=(",", ":")) in e["curl"]
    # Auth is on by default for deployments: keys shown once, referenced (never written) in the curl.
    keys = s["new_keys"]
    assert set(keys) == {"primary", "secondary"}
    assert "$SHIPYARD_ENDPOINT_KEY" in e["curl"] and keys["primary"] not in e["curl"] and e["auth"] is True
    assert http.post(e["url"] + "/score", json=seed_payload).status_code == 401
    http.headers["Authorization"] = f"Bearer {keys['primary']}"
    health = served(http, e["url"])
    assert health["model_name"] == MODEL and health["model_version"] == "1"
    assert health["deployment_id"] == e["deployment_id"]
    assert predictions(http, e["url"], seed_payload) == pytest.approx(
        model.predict(seed_payload["data"]).tolist()
    )

    [dep] = query(flow.ws, "select state, pid, model_version from shipyard_deployments")
    assert dep["state"] == "active" and dep["model_version"] == "1" and pid_is_alive(dep["pid"])
    flow.state.update(
        keys=keys,
        v1_run=s["run"]["run_id"],
        v1_mse=mse,
        v1_pipeline=s["pipeline_run_id"],
        dataset_hash=s["data_check"]["dataset_hash"],
        dep=e["deployment_id"],
        url=e["url"],
        pid=dep["pid"],
    )


@step
def rerun_with_nothing_changed_is_fully_cached(flow, http, query):
    s = ok(flow.run())

    assert s["status"] == "succeeded"
    assert s["cached_steps"] == ALL_STEPS
    assert s["pipeline_run_id"] != flow.state["v1_pipeline"]
    assert s["run"]["run_id"] == flow.state["v1_run"]
    assert s["model"]["version"] == "1" and s["model"]["created"] is False  # registered by run 1
    assert s["gate"]["reason"].startswith("this run's model is production already (v1); decided by")
    assert "new_keys" not in s  # keys are shown once, at creation
    assert s["endpoint"]["deployment_id"] == flow.state["dep"] and s["endpoint"]["url"] == flow.state["url"]
    rows = query(
        flow.ws, "select step, status from shipyard_step_runs where pipeline_run_id = ?", s["pipeline_run_id"]
    )
    assert {r["step"]: r["status"] for r in rows} == dict.fromkeys(ALL_STEPS, "cached")
    assert served(http, flow.state["url"])["deployment_id"] == flow.state["dep"]


@step
def worse_candidate_is_rejected_and_production_stays(flow, http, mlflow_client, reference_model):
    s = ok(flow.run("--param", "alpha=50"))  # a rejection is not a failure without --fail-on-reject

    mse50, _ = reference_model(50)
    assert s["run"]["metrics"]["mse"] == pytest.approx(mse50, rel=1e-9)
    assert s["run"]["metrics"]["mse"] > flow.state["v1_mse"]
    assert s["status"] == "rejected"
    assert statuses(s) == {
        "data_check": "cached",
        "train": "succeeded",
        "evaluate": "succeeded",
        **dict.fromkeys(AFTER_GATE, "skipped"),
    }
    g = s["gate"]
    assert g["verdict"] == "rejected" and "threshold" in g["reason"]
    assert g["champion_version"] == "1" and g["champion_value"] == pytest.approx(flow.state["v1_mse"])
    assert "model" not in s and "endpoint" not in s

    client = mlflow_client(flow.ws)
    assert version_numbers(client) == [1] and production(client) == "1"
    assert served(http, flow.state["url"])["model_version"] == "1"

    shown = ok(flow.cmd("gate", "show"))
    latest = shown[0]
    assert latest["verdict"] == "rejected" and latest["model_name"] == MODEL
    assert latest["pipeline_run_id"] == s["pipeline_run_id"]
    assert latest["candidate_run_id"] == s["run"]["run_id"]
    assert latest["candidate_value"] == pytest.approx(mse50)
    assert latest["champion_version"] == "1" and latest["champion_value"] == pytest.approx(
        flow.state["v1_mse"]
    )
    assert [d["verdict"] for d in shown] == ["rejected", "passed"]  # one decision per evaluation run


@step
def fail_on_reject_reports_the_rejection(flow):
    res = flow.run("--param", "alpha=50", "--fail-on-reject")
    assert res.code == 3
    s = res.json()
    assert s["status"] == "rejected" and s["gate"]["verdict"] == "rejected"
    # Same candidate, same champion: the train run and the decision are reused.
    assert s["cached_steps"] == ["data_check", "train", "evaluate"]


@step
def better_candidate_becomes_v2_and_replaces_the_server(
    flow, http, query, mlflow_client, reference_model, seed_payload, pid_gone
):
    mse01, model01 = reference_model(0.1)
    assert mse01 < flow.state["v1_mse"]

    with pytest.MonkeyPatch.context() as env:
        env.setenv("SHIPYARD_ACTOR", "release-bot")
        s = ok(flow.run("--param", "alpha=0.1"))

    assert s["status"] == "succeeded" and s["cached_steps"] == ["data_check"]
    assert s["run"]["metrics"]["mse"] == pytest.approx(mse01, rel=1e-9)
    g = s["gate"]
    assert g["verdict"] == "passed" and g["reason"].startswith("better by")
    assert g["champion_version"] == "1" and g["champion_value"] == pytest.approx(flow.state["v1_mse"])
    assert s["model"]["version"] == "2" and s["model"]["created"] is True
    assert {(m["alias"], m["from"], m["to"]) for m in s["model"]["alias_moves"]} == {
        ("staging", "1", "2"),
        ("production", "1", "2"),
    }
    client = mlflow_client(flow.ws)
    assert version_numbers(client) == [1, 2] and production(client) == "2"

    e = s["endpoint"]
    assert e["deployment_id"] != flow.state["dep"]
    health = served(http, e["url"])
    assert health["model_version"] == "2" and health["deployment_id"] == e["deployment_id"]
    assert predictions(http, e["url"], seed_payload) == pytest.approx(
        model01.predict(seed_payload["data"]).tolist()
    )

    # The old server was stopped once the new one passed its smoke test.
    assert pid_gone(flow.state["pid"]), f"old server pid {flow.state['pid']} still running"
    states = {r["id"]: r for r in query(flow.ws, "select id, state, pid from shipyard_deployments")}
    assert states[flow.state["dep"]]["state"] == "replaced"
    assert states[e["deployment_id"]]["state"] == "active"
    if e["url"] != flow.state["url"]:
        with pytest.raises(httpx.TransportError):
            http.get(flow.state["url"] + "/")
    [endpoint] = ok(flow.cmd("endpoints", "list"))
    assert endpoint["endpoint"] == "dev" and endpoint["state"] == "serving"
    assert endpoint["model"] == f"{MODEL}:2" and endpoint["deployment_id"] == e["deployment_id"]
    flow.state.update(
        v2_run=s["run"]["run_id"],
        v2_mse=mse01,
        v2_pipeline=s["pipeline_run_id"],
        dep=e["deployment_id"],
        url=e["url"],
        pid=states[e["deployment_id"]]["pid"],
    )


@step
def alias_history_records_each_move_with_who_and_why(flow):
    moves = ok(
        flow.cli(
            "models", "history", MODEL, "--alias", "production", "--workspace", flow.ws, "--output", "json"
        )
    )
    assert [(m["from"], m["to"]) for m in moves] == [(None, "1"), ("1", "2")]
    first, second = moves
    assert first["pipeline_run_id"] == flow.state["v1_pipeline"]
    assert "no production model yet" in first["why"]
    assert second["pipeline_run_id"] == flow.state["v2_pipeline"]
    assert second["who"] == "release-bot"
    assert second["why"].startswith("gate passed: better by") and "production v1" in second["why"]

    everything = ok(flow.cmd("models", "history", MODEL))
    assert [(m["alias"], m["from"], m["to"]) for m in everything] == [
        ("staging", None, "1"),
        ("production", None, "1"),
        ("staging", "1", "2"),
        ("production", "1", "2"),
    ]


@step
def mlflow_client_sees_versions_tags_and_aliases(flow, mlflow_client):
    client = mlflow_client(flow.ws)
    model = client.get_registered_model(MODEL)
    assert {k: str(v) for k, v in model.aliases.items()} == {"production": "2", "staging": "2"}
    assert version_numbers(client) == [1, 2]
    for version, key in (("1", "v1"), ("2", "v2")):
        mv = client.get_model_version(MODEL, version)
        run_id = flow.state[f"{key}_run"]
        assert mv.run_id == run_id
        assert mv.tags["shipyard.run_id"] == run_id
        assert mv.tags["shipyard.pipeline_run_id"] == flow.state[f"{key}_pipeline"]
        assert mv.tags["shipyard.dataset_hash"] == flow.state["dataset_hash"]
        assert mv.tags["metric.mse"] == f"{flow.state[f'{key}_mse']:.6g}"
        assert mv.tags["team"] == "ml-platform"
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.metrics["mse"] == pytest.approx(flow.state[f"{key}_mse"], rel=1e-9)
        assert run.data.tags["shipyard.pipeline_run_id"] == flow.state[f"{key}_pipeline"]
        parent = client.get_run(run.data.tags["mlflow.parentRunId"])
        assert parent.info.status == "FINISHED"
    assert client.get_run(flow.state["v2_run"]).data.params["alpha"] == "0.1"
    assert str(client.get_model_version_by_alias(MODEL, "staging").version) == "2"


@step
def models_show_unknown_model_lists_existing_models(flow):
    res = flow.cli("models", "show", "nope", "--workspace", flow.ws)
    assert res.code != 0
    assert "no model named 'nope'" in res.err and MODEL in res.err
    assert "Traceback" not in res.err + res.out


@step
def models_show_unknown_alias_is_a_clear_error(flow):
    res = flow.cli("models", "show", f"{MODEL}@nope", "--workspace", flow.ws)
    assert res.code != 0
    assert f"model '{MODEL}' has no alias 'nope'" in res.err
    assert "Traceback" not in res.err + res.out


@step
def models_show_unknown_alias_lists_the_existing_aliases(flow):
    res = flow.cli("models", "show", f"{MODEL}@nope", "--workspace", flow.ws)
    assert "production" in res.err and "staging" in res.err, res.err


@step
def models_show_lists_each_versions_aliases(flow):
    shown = ok(flow.cmd("models", "show", MODEL))
    aliases = {v["version"]: sorted(v["aliases"]) for v in shown["versions"]}
    assert aliases == {"1": [], "2": ["production", "staging"]}


@step
def outputs_folder_gets_matching_handoff_files(flow):
    folder = flow.ws.parent / "handoff"
    s = ok(flow.run("--param", "alpha=0.1", "--outputs", folder))

    # Re-running the promoted configuration hits every cache entry, the gate's included.
    assert s["cached_steps"] == ALL_STEPS
    assert s["outputs"] == ["endpoint.json", "model.json", "run.json"]
    assert sorted(p.name for p in folder.iterdir()) == s["outputs"]
    run = json.loads((folder / "run.json").read_text())
    model = json.loads((folder / "model.json").read_text())
    endpoint = json.loads((folder / "endpoint.json").read_text())
    assert run["pipeline_run_id"] == s["pipeline_run_id"] and run["status"] == "succeeded"
    assert run["run"]["run_id"] == flow.state["v2_run"] and run["gate"]["verdict"] == "passed"
    assert model["name"] == MODEL and model["version"] == "2"
    assert endpoint["deployment_id"] == flow.state["dep"] and endpoint["url"] == flow.state["url"]
    assert endpoint["model"]["version"] == "2"
    # No secret in the hand-off files, the store or the logs of the workspace. Scanned in a child
    # process: opening the SQLite file here would drop this process's POSIX locks on it.
    scan = (
        "import sys, pathlib\n"
        "keys = [k.encode() for k in sys.stdin.read().split()]\n"
        "for root in sys.argv[1:3]:\n"
        "    for p in pathlib.Path(root).rglob('*'):\n"
        "        if p.is_file() and any(k in p.read_bytes() for k in keys):\n"
        "            print(p)\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", scan, str(folder), str(flow.ws)],
        input="\n".join(flow.state["keys"].values()),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert found == ""


@step
def from_evaluate_reruns_the_later_steps_only(flow, http, mlflow_client, pid_gone):
    s = ok(flow.run("--param", "alpha=0.1", "--from", "evaluate"))

    assert statuses(s) == {
        "data_check": "cached",
        "train": "cached",
        **dict.fromkeys(ALL_STEPS[2:], "succeeded"),
    }
    assert s["run"]["run_id"] == flow.state["v2_run"]
    assert s["gate"]["verdict"] == "passed"
    assert s["model"]["version"] == "2" and s["model"]["created"] is False and s["model"]["alias_moves"] == []
    assert version_numbers(mlflow_client(flow.ws)) == [1, 2]
    e = s["endpoint"]
    assert e["deployment_id"] != flow.state["dep"]
    assert served(http, e["url"]) == {
        "status": "healthy",
        "model_name": MODEL,
        "model_version": "2",
        "deployment_id": e["deployment_id"],
    }
    assert pid_gone(flow.state["pid"])
    moves = ok(flow.cmd("models", "history", MODEL))
    assert len(moves) == 4  # no-op alias sets are not recorded
    flow.state.update(dep=e["deployment_id"], url=e["url"])


@step
def no_cache_retrains_with_a_new_run(flow, http, mlflow_client):
    s = ok(flow.run("--param", "alpha=0.1", "--no-cache"))

    assert s["cached_steps"] == []
    assert s["run"]["run_id"] != flow.state["v2_run"]
    assert s["run"]["metrics"]["mse"] == pytest.approx(flow.state["v2_mse"], rel=1e-9)  # deterministic fit
    # Same score as production: a tie is not an improvement.
    assert s["status"] == "rejected" and s["gate"]["reason"].startswith("tie")
    client = mlflow_client(flow.ws)
    assert version_numbers(client) == [1, 2] and production(client) == "2"
    assert served(http, flow.state["url"])["deployment_id"] == flow.state["dep"]


@step
def after_a_rejected_retrain_the_cache_reuses_the_production_run(flow):
    # The --no-cache retrain above has the same cache key but was rejected (tie); the cache must
    # prefer the run whose pipeline went all the way, i.e. the one production holds.
    s = ok(flow.run("--param", "alpha=0.1"))
    assert s["status"] == "succeeded"
    assert s["run"]["run_id"] == flow.state["v2_run"]
    assert s["gate"]["verdict"] == "passed"
    assert "train" in s["cached_steps"] and s["model"]["version"] == "2"


def training_processes(script: str, alive: Callable[[int], bool]) -> list[int]:
    """Pids of live processes running `script` (read from /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if script.encode() in cmdline.read_bytes().split(b"\0") and alive(int(cmdline.parent.name)):
                found.append(int(cmdline.parent.name))
        except OSError:
            pass
    return found


@step
def run_killed_mid_training_leaves_the_registry_unchanged(
    flow, http, query, mlflow_client, shipyard_bin, pid_is_alive
):
    script = str((flow.proj / "train.py").resolve())
    known = {r["id"] for r in query(flow.ws, "select id from shipyard_pipeline_runs")}
    command = [
        shipyard_bin,
        "run",
        "--project",
        flow.proj,
        "--workspace",
        flow.ws,
        "--no-cache",
        "--param",
        "alpha=0.2",
        "--output",
        "json",
    ]
    proc = subprocess.Popen(
        list(map(str, command)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # Ctrl-C must reach Python's handler even when the tests run with SIGINT ignored (a
        # background job of a shell without job control), which a child would inherit.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 90
        while True:  # until the training script itself is running
            rows = query(
                flow.ws,
                "select pipeline_run_id from shipyard_step_runs where step = 'train' and status = 'running'",
            )
            new = [r["pipeline_run_id"] for r in rows if r["pipeline_run_id"] not in known]
            if new and training_processes(script, pid_is_alive):
                break
            assert proc.poll() is None, f"exited early: {proc.communicate()}"
            assert time.monotonic() < deadline, "train never started"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    pipeline_run = new[0]

    assert "Traceback" not in err, err
    [run] = query(flow.ws, "select status, error from shipyard_pipeline_runs where id = ?", pipeline_run)
    assert run == {"status": "failed", "error": "interrupted"}
    steps = query(
        flow.ws,
        "select step, status, message from shipyard_step_runs where pipeline_run_id = ?",
        pipeline_run,
    )
    assert {r["step"]: r["status"] for r in steps} == {
        "data_check": "succeeded",
        "train": "failed",
        **dict.fromkeys(ALL_STEPS[2:], "skipped"),
    }
    assert (
        query(flow.ws, "select id from shipyard_gate_decisions where pipeline_run_id = ?", pipeline_run) == []
    )

    client = mlflow_client(flow.ws)
    assert version_numbers(client) == [1, 2] and production(client) == "2"
    [train_run] = client.search_runs(
        [client.get_experiment_by_name("diabetes").experiment_id],
        f"tags.`shipyard.pipeline_run_id` = '{pipeline_run}' and tags.`shipyard.step` = 'train'",
    )
    assert train_run.info.status == "KILLED"
    time.sleep(0.5)
    assert not training_processes(script, pid_is_alive), "the training script outlived the interrupted run"
    assert served(http, flow.state["url"])["deployment_id"] == flow.state["dep"]
    assert proc.returncode == 130


@step
def next_run_after_the_kill_completes_and_registers_v3(
    flow, http, mlflow_client, reference_model, seed_payload
):
    mse02, model02 = reference_model(0.2)
    assert mse02 < flow.state["v2_mse"]

    s = ok(flow.run("--param", "alpha=0.2"))

    assert s["status"] == "succeeded"
    assert statuses(s)["train"] == "succeeded"  # the interrupted attempt left nothing to reuse
    assert s["run"]["metrics"]["mse"] == pytest.approx(mse02, rel=1e-9)
    assert s["gate"]["champion_version"] == "2"
    assert s["model"]["version"] == "3"  # consecutive: the killed run took no version number
    client = mlflow_client(flow.ws)
    assert version_numbers(client) == [1, 2, 3] and production(client) == "3"
    url = s["endpoint"]["url"]
    assert served(http, url)["model_version"] == "3"
    assert predictions(http, url, seed_payload) == pytest.approx(
        model02.predict(seed_payload["data"]).tolist()
    )
    flow.state.update(dep=s["endpoint"]["deployment_id"], url=url)


@step
def package_and_deploy_commands_put_a_chosen_version_on_the_endpoint(flow, http):
    b = ok(flow.cmd("package", "diabetes-ridge:1"))
    assert b["model_name"] == MODEL and b["model_version"] == "1"
    assert (Path(b["path"]) / "manifest.json").is_file() and (Path(b["path"]) / "score.py").is_file()

    d = ok(flow.cmd("deploy", "diabetes-ridge:1"))
    assert d["state"] == "active" and d["model_version"] == "1" and d["smoke_passed"] is True
    assert "new_keys" not in d  # the endpoint's keys exist already; the old ones keep working
    assert served(http, d["url"])["model_version"] == "1"
    d2 = ok(flow.cmd("deploy"))  # default: the model @production, v3
    assert d2["model_version"] == "3" and served(http, d2["url"])["model_version"] == "3"
    with pytest.raises(httpx.TransportError):
        http.get(d["url"] + "/")  # the v1 server was stopped once v3 passed its smoke test
    flow.state.update(dep=d2["id"], url=d2["url"])


@step
def endpoint_delete_stops_the_server(flow, http, query, pid_gone):
    [active] = query(flow.ws, "select id, pid from shipyard_deployments where state = 'active'")
    assert active["id"] == flow.state["dep"]

    deleted = ok(flow.cmd("endpoints", "delete", "dev"))

    assert deleted == {"endpoint": "dev", "stopped": [flow.state["dep"]]}
    assert pid_gone(active["pid"])
    with pytest.raises(httpx.TransportError):
        http.get(flow.state["url"] + "/")
    [endpoint] = ok(flow.cmd("endpoints", "list"))
    assert endpoint["state"] == "down" and endpoint["deployment_id"] is None
    assert not query(
        flow.ws, "select id from shipyard_deployments where state in ('active', 'healthy', 'starting')"
    )


@pytest.mark.parametrize("check", STORY, ids=lambda check: check.__name__)
def test_step(flow: Flow, check: Callable[..., None]) -> None:
    flow.reach(check)
