"""The ssh compute target against a real OpenSSH server on 127.0.0.1 (one per module).

The "remote" host is this machine, so a test can look at the remote side directly (the job folder,
`ps`), which is how it checks what the remote process got and what it did not.
"""

from __future__ import annotations

import getpass
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from compute_support import plain_python, step_job
from sshd_support import Sshd, sshd  # noqa: F401

from shipyard.compute.base import StepJob, run
from shipyard.compute.ssh.target import SshTarget
from shipyard.errors import StepFailed
from shipyard.secrets.scan import scan_for_values
from shipyard.ssh import SshError

pytestmark = pytest.mark.integration

SECRET = "ssh-secret-5a4b3c2d1e0f"


@pytest.fixture
def remote_root(tmp_path: Path) -> Path:
    return tmp_path / "remote"


def target(sshd: Sshd, root: Path, **kw: object) -> SshTarget:
    fields: dict[str, object] = {
        "user": getpass.getuser(),
        "key": f"file:{sshd.client_key}",
        "known_hosts": sshd.known_hosts,
        "workdir_root": str(root),
        "grace_s": 2.0,
        "poll_s": 0.2,
    }
    fields.update(kw)
    return SshTarget("127.0.0.1", sshd.port, **fields)  # type: ignore[arg-type]


def job_for(tmp_path: Path, code: str, **kw: object) -> StepJob:
    return step_job(tmp_path, code, **kw)


def test_script_runs_remotely_with_inputs_and_its_outputs_come_back(
    sshd: Sshd, tmp_path: Path, remote_root: Path
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    code = (
        "import json, os, pathlib\n"
        "inputs = json.loads(os.environ['SHIPYARD_INPUTS'])\n"
        "out = pathlib.Path(os.environ['SHIPYARD_OUTPUTS'])\n"
        "(out / 'model.txt').write_text(pathlib.Path(inputs['train']).read_text().upper())\n"
        "(out / 'seen.json').write_text(json.dumps({'inputs': inputs, 'cwd': os.getcwd(),\n"
        "    'tracking': os.environ['MLFLOW_TRACKING_URI'],\n"
        "    'helper': pathlib.Path('helper.txt').read_text()}))\n"
        "print('trained', flush=True)\n"
    )
    job = job_for(tmp_path, code, inputs={"train": data}, env={"MLFLOW_TRACKING_URI": "sqlite:///x.db"})
    (job.project_dir / "helper.txt").write_text("beside the script")
    (job.project_dir / ".shipyard").mkdir()
    (job.project_dir / ".shipyard" / "big.db").write_text("workspace")
    result = run(target(sshd, remote_root), job)
    assert result.succeeded and result.exit_code == 0
    assert (job.outputs_dir / "model.txt").read_text() == "A,B\n1,2\n"
    seen = json.loads((job.outputs_dir / "seen.json").read_text())
    remote_input = Path(seen["inputs"]["train"])
    assert remote_input.is_relative_to(remote_root) and remote_input.name == "data.csv"
    assert seen["cwd"].endswith("/code") and seen["helper"] == "beside the script"
    assert seen["tracking"].startswith(f"file:{remote_root}/") and seen["tracking"].endswith(
        "/outputs/mlruns"
    )
    assert "trained" in job.log_path.read_text()
    assert list(remote_root.iterdir()) == []  # the remote job folder is removed after the job


def test_logs_stream_while_the_job_runs(sshd: Sshd, tmp_path: Path, remote_root: Path) -> None:
    code = "import time\nprint('first', flush=True)\ntime.sleep(60)\n"
    t = target(sshd, remote_root)
    handle = t.submit(job_for(tmp_path, code))
    try:
        deadline = time.monotonic() + 20
        while "first" not in t.logs(handle):
            assert time.monotonic() < deadline, "the first line never arrived"
            time.sleep(0.2)
        assert t.status(handle) == "running"
    finally:
        t.cancel(handle)


def test_failing_script_reports_exit_status_and_remote_log_tail(
    sshd: Sshd, tmp_path: Path, remote_root: Path
) -> None:
    code = "import sys\nprint('about to fail', flush=True)\nsys.exit(7)\n"
    with pytest.raises(StepFailed) as caught:
        run(target(sshd, remote_root), job_for(tmp_path, code))
    message = str(caught.value)
    assert "exited with code 7 on the ssh target" in message and "about to fail" in message


def test_cancel_kills_the_remote_process_group(sshd: Sshd, tmp_path: Path, remote_root: Path) -> None:
    code = (
        "import os, subprocess, time\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        "print('pids', os.getpid(), child.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    t = target(sshd, remote_root, keep_remote=True)
    handle = t.submit(job_for(tmp_path, code))
    deadline = time.monotonic() + 20
    while "pids" not in t.logs(handle):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    pids = [int(p) for p in t.logs(handle).split("pids", 1)[1].split()[:2]]
    t.cancel(handle)
    assert t.status(handle) == "cancelled"
    assert t.wait(handle, 5).status == "cancelled"
    for pid in [handle.pid, *pids]:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_secret_reaches_the_remote_process_and_nothing_else(
    sshd: Sshd, tmp_path: Path, remote_root: Path
) -> None:
    code = (
        "import os, time\n"
        "print('token is', os.environ['API_TOKEN'], flush=True)\n"
        "open(os.environ['SHIPYARD_OUTPUTS'] + '/ok', 'w').write(str(os.environ['API_TOKEN'] == "
        f"{SECRET!r}))\n"
        "time.sleep(1.5)\n"
    )
    job = job_for(tmp_path, code, secret_env={"API_TOKEN": SECRET})
    t = target(sshd, remote_root)
    seen_ps: list[str] = []

    def watch() -> None:
        for _ in range(10):
            seen_ps.append(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    run(t, job)
    watcher.join()
    assert (job.outputs_dir / "ok").read_text() == "True"
    assert "token is ***" in job.log_path.read_text()
    assert all(SECRET not in " ".join(argv) for argv in t.session.commands) and t.session.commands
    assert all(SECRET not in text for text in seen_ps)
    assert scan_for_values(tmp_path / "ws", [SECRET]) == []


def test_key_from_an_env_variable_is_used_and_removed(
    sshd: Sshd, tmp_path: Path, remote_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_TEST_SSH_KEY", sshd.client_key.read_text())
    t = target(sshd, remote_root, key="env:SHIPYARD_TEST_SSH_KEY")
    assert run(t, job_for(tmp_path, "print('via env key')\n")).succeeded
    key_files = [argv[argv.index("-i") + 1] for argv in t.session.commands]
    assert key_files and all(not Path(p).exists() for p in key_files)
    assert all(not Path(p).is_relative_to(tmp_path) for p in key_files)


def test_wrong_key_is_an_auth_error(sshd: Sshd, tmp_path: Path, remote_root: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    with pytest.raises(SshError, match=r"refused the key file:.*authorized_keys"):
        target(sshd, remote_root, key=f"file:{other}").probe()


def test_unknown_host_key_is_refused_with_how_to_add_it(
    sshd: Sshd, tmp_path: Path, remote_root: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(SshError, match=rf"host key of 127.0.0.1:{sshd.port} is not known.*ssh-keyscan -p"):
        target(sshd, remote_root, known_hosts=empty).probe()
    assert target(sshd, remote_root, known_hosts=empty, accept_new=True).host_facts()[0] == str(remote_root)
    assert sshd.host_public_key.split()[1] in empty.read_text()


def test_unreachable_port_is_a_connection_error(tmp_path: Path, remote_root: Path, sshd: Sshd) -> None:
    from sshd_support import free_port

    port = free_port()
    t = target(sshd, remote_root)
    t.session.port = port
    with pytest.raises(SshError, match=rf"cannot reach 127.0.0.1:{port}"):
        t.probe()


def test_missing_remote_python_is_named(sshd: Sshd, tmp_path: Path, remote_root: Path) -> None:
    with pytest.raises(StepFailed, match="no-such-python3 is not installed on 127.0.0.1"):
        target(sshd, remote_root, python="no-such-python3").probe()


def test_spec_builds_a_remote_venv_once_and_reuses_it(sshd: Sshd, tmp_path: Path, remote_root: Path) -> None:
    code = "import os, sys, six\nopen(os.environ['SHIPYARD_OUTPUTS'] + '/prefix', 'w').write(sys.prefix)\n"
    job = job_for(tmp_path, code, environment=Path("requirements.txt"))
    (job.project_dir / "requirements.txt").write_text("six\n")
    t = target(sshd, remote_root)
    run(t, job)
    assert t.last_env_action == "built"
    prefix = (job.outputs_dir / "prefix").read_text()
    env_dir = Path(prefix)
    assert env_dir.parent == remote_root / "envs" and len(env_dir.name) == 12
    marker = env_dir / ".shipyard-env.json"
    assert json.loads(marker.read_text())["requirements"] == ["six"]
    before = marker.stat().st_mtime_ns
    run(t, job)
    assert t.last_env_action == "reused" and marker.stat().st_mtime_ns == before


def test_with_a_wheel_cache_the_env_gets_shipyard_offline_and_follows_its_wheel(
    sshd: Sshd, tmp_path: Path, remote_root: Path
) -> None:
    code = (
        "import os, shipyard, six\n"
        "open(os.environ['SHIPYARD_OUTPUTS'] + '/where', 'w').write(shipyard.__file__ + ' ' + six.__file__)\n"
    )
    job = job_for(tmp_path, code, environment=Path("requirements.txt"))
    (job.project_dir / "requirements.txt").write_text("six\n")
    t = target(
        sshd, remote_root, python=str(plain_python(tmp_path / "plain")), wheel_cache=tmp_path / "cache"
    )
    assert run(t, job).status == "succeeded"
    assert t.last_env_action == "built"
    [env] = [p for p in (remote_root / "envs").iterdir() if p.is_dir()]
    assert all(path.startswith(f"{env}/lib/") for path in (job.outputs_dir / "where").read_text().split())
    marker_file = env / ".shipyard-env.json"
    marker = json.loads(marker_file.read_text())
    [wheels] = list((remote_root / "wheels").iterdir())
    assert marker["wheels"] == wheels.name and marker["requirements"] == ["six"]
    assert any(p.name.startswith("six-") for p in wheels.glob("*.whl"))
    # An environment made from other wheels (an older Shipyard): the same venv, reinstalled.
    marker_file.write_text(json.dumps(marker | {"wheels": "0" * 16}))
    run(t, job)
    assert t.last_env_action == "refreshed" and json.loads(marker_file.read_text())["wheels"] == wheels.name
    run(t, job)
    assert t.last_env_action == "reused" and list((remote_root / "wheels").iterdir()) == [wheels]
