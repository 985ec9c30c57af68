"""`kill -9` of a real `shipyard run` at a chosen point, then what the next run, `endpoints delete`
and `shipyard doctor` make of what it left (pipeline/recovery.py).

The deploy points are reached with the test-only hook SHIPYARD_TEST_PAUSE_AT (shipyard/crashpoint.py):
the runner writes its pid to a marker file and sleeps there until it is killed. Training is
caught by a train.py that writes its own pid (and a child's) and sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _wait_file(path: Path, proc: subprocess.Popen, timeout_s: float = 120) -> str:
    deadline = time.monotonic() + timeout_s
    while not (path.is_file() and path.read_text().strip()):
        if proc.poll() is not None:
            raise AssertionError(f"shipyard run ended (rc {proc.returncode}) before the pause point")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)
    return path.read_text().strip()


def _kill_run_at(
    shipyard_bin: Path, project: Path, tmp: Path, *args: str, point: str | None, marker: Path, env=None
):
    """Start `shipyard run ARGS` in `project`, wait for `marker`, kill -9 the runner; its pid."""
    extra = {"SHIPYARD_TEST_PAUSE_AT": point, "SHIPYARD_TEST_PAUSE_FILE": str(marker)} if point else {}
    log = open(tmp / "killed-run.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(shipyard_bin), "run", *args], cwd=project, env={**os.environ, **extra, **(env or {})},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_file(marker, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        log.close()
    return proc.pid


def _servers_of(dep_id: str) -> list[int]:
    """Scoring server pids with this deployment id on their command line (read here from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"shipyard.serving" in argv and dep_id.encode() in argv:
                out.append(int(entry))
    return out


def _gone_within(pids: list[int], pid_gone, timeout_s: float) -> bool:
    return all(pid_gone(p, timeout_s) for p in pids)


def test_endpoints_delete_stops_the_server_of_a_killed_deploy(
    tmp_path, copy_project, shipyard_bin, shipyard_proc, query, pid_gone, teardown_endpoints
):
    project = copy_project(tmp_path / "p")
    ws = project / ".shipyard"
    try:
        _kill_run_at(shipyard_bin, project, tmp_path, point="deploy:spawned", marker=tmp_path / "paused")
        [dep] = query(ws, "SELECT id, state, pid, owner_host FROM shipyard_deployments")
        # Killed after the spawn, before the pid was committed: the row names no pid...
        assert dep["state"] == "starting" and dep["pid"] is None and dep["owner_host"]
        orphans = _servers_of(dep["id"])
        assert len(orphans) == 1  # ...and its server outlived the runner
        deleted = shipyard_proc("endpoints", "delete", "dev", cwd=project)
        assert deleted.code == 0, deleted.err
        assert _gone_within(orphans, pid_gone, 15)  # found by its deployment id, stopped
        assert query(ws, "SELECT state FROM shipyard_deployments")[0]["state"] == "deleted"
    finally:
        teardown_endpoints(ws)


def test_doctor_repairs_a_run_killed_between_production_and_serving(
    tmp_path, copy_project, shipyard_bin, shipyard_proc, query, mlflow_client, pid_gone, teardown_endpoints
):
    project = copy_project(tmp_path / "p")
    ws = project / ".shipyard"
    try:
        first = shipyard_proc("run", cwd=project)
        assert first.code == 0, first.err
        # A better model: production moves to v2, then the runner dies with v2's server spawned.
        _kill_run_at(
            shipyard_bin, project, tmp_path, "--param", "alpha=0.05", point="deploy:spawned",
            marker=tmp_path / "paused",
        )  # fmt: skip
        starting = query(ws, "SELECT id FROM shipyard_deployments WHERE state = 'starting'")
        assert len(starting) == 1
        orphans = _servers_of(starting[0]["id"])
        assert len(orphans) == 1
        [killed] = query(
            ws, "SELECT id, status, mlflow_run_id FROM shipyard_pipeline_runs WHERE status = 'running'"
        )
        client = mlflow_client(ws)
        assert str(client.get_model_version_by_alias("diabetes-ridge", "production").version) == "2"

        dry = shipyard_proc("doctor", "--dry-run", "-o", "json", cwd=project)
        assert dry.code == 1, dry.err  # work to do, nothing done
        planned = {(f["kind"], f["status"]) for f in json.loads(dry.out)}
        assert planned == {
            ("pipeline_run", "would repair"),
            ("deployment", "would repair"),
            ("endpoint", "would repair"),
        }
        assert (
            query(ws, "SELECT status FROM shipyard_pipeline_runs WHERE id = ?", killed["id"])[0]["status"]
            == "running"
        )
        assert all(not pid_gone(p, 0.1) for p in orphans)

        fixed = shipyard_proc("doctor", "-o", "json", cwd=project)
        assert fixed.code == 0, fixed.err
        found = json.loads(fixed.out)
        assert {f["status"] for f in found} == {"repaired"}
        assert _gone_within(orphans, pid_gone, 15)
        assert (
            query(ws, "SELECT state FROM shipyard_deployments WHERE id = ?", starting[0]["id"])[0]["state"]
            == "failed"
        )
        run = query(ws, "SELECT status, error FROM shipyard_pipeline_runs WHERE id = ?", killed["id"])[0]
        assert run["status"] == "killed" and "died" in run["error"]
        runs = client.search_runs([client.get_run(killed["mlflow_run_id"]).info.experiment_id])
        assert "RUNNING" not in {r.info.status for r in runs}
        assert client.get_run(killed["mlflow_run_id"]).info.status == "KILLED"
        # The endpoint now serves production, from a live server.
        active = query(ws, "SELECT model_version, pid FROM shipyard_deployments WHERE state = 'active'")
        assert [a["model_version"] for a in active] == ["2"]
        assert not pid_gone(active[0]["pid"], 0.1)
        again = shipyard_proc("doctor", "-o", "json", cwd=project)
        assert (again.code, json.loads(again.out)) == (0, [])
    finally:
        teardown_endpoints(ws)


SLEEPING_TRAIN = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
open({marker!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
time.sleep(300)
"""


def test_a_run_killed_mid_train_takes_its_script_along_and_is_marked_killed(
    tmp_path, copy_project, shipyard_bin, shipyard_proc, query, mlflow_client, pid_gone
):
    project = copy_project(tmp_path / "p", deployment=False)
    ws = project / ".shipyard"
    marker = tmp_path / "train.pids"
    (project / "train.py").write_text(SLEEPING_TRAIN.format(marker=str(marker)))
    other = {"SHIPYARD_HOST_ID": "another-machine"}
    _kill_run_at(shipyard_bin, project, tmp_path, point=None, marker=marker, env=other)
    train_pid, child_pid = map(int, marker.read_text().split())
    assert pid_gone(train_pid, 5)  # dies with its runner (PR_SET_PDEATHSIG), not reparented
    assert not pid_gone(child_pid, 0.1)  # what the script started is left for the next run
    try:
        # Recorded by "another machine": never judged dead from here.
        here = shipyard_proc("doctor", "-o", "json", cwd=project)
        assert (here.code, json.loads(here.out)) == (0, [])
        assert query(ws, "SELECT status FROM shipyard_pipeline_runs")[0]["status"] == "running"
        # The next run on that machine marks it killed and stops what its script left.
        nxt = shipyard_proc("run", "--until", "data_check", "-o", "json", cwd=project, env=other)
        assert nxt.code == 0, nxt.err
        recovered = {(r["kind"], r["id"]) for r in json.loads(nxt.out)["recovered"]}
        assert ("process", str(child_pid)) in recovered
        assert pid_gone(child_pid, 5)
        [killed] = query(ws, "SELECT id, mlflow_run_id FROM shipyard_pipeline_runs WHERE status = 'killed'")
        assert ("pipeline_run", killed["id"]) in recovered
        step = query(
            ws,
            "SELECT status, message FROM shipyard_step_runs WHERE pipeline_run_id = ? AND step = 'train'",
            killed["id"],
        )
        assert step[0]["status"] == "failed" and step[0]["message"].startswith("interrupted")
        client = mlflow_client(ws)
        runs = client.search_runs([client.get_run(killed["mlflow_run_id"]).info.experiment_id])
        assert len(runs) == 2 and {r.info.status for r in runs} == {"KILLED"}
    finally:
        if not pid_gone(child_pid, 0):
            os.kill(child_pid, signal.SIGKILL)
