"""The local compute target and `run()`: real subprocesses, real log files, real signals."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from compute_support import step_job

from shipyard.compute.base import JobHandle, StepJob, run
from shipyard.compute.local import LocalTarget
from shipyard.errors import StepFailed, UsageError

SECRET = "s3cr3t-Value-0123456789"


def make_job(tmp_path: Path, code: str, **kw: object) -> StepJob:
    return step_job(tmp_path, code, name="train", **kw)


def wait_for_text(path: Path, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def test_success_passes_args_env_inputs_and_outputs(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    job = make_job(
        tmp_path,
        """
        import json, os, sys, pathlib
        inputs = json.loads(os.environ["SHIPYARD_INPUTS"])
        out = pathlib.Path(os.environ["SHIPYARD_OUTPUTS"])
        (out / "result.txt").write_text(pathlib.Path(inputs["data"]).read_text().upper())
        print("args", sys.argv[1:], "run", os.environ["SHIPYARD_RUN_ID"], "cwd", os.getcwd())
        print("python", sys.executable)
        """,
        args=("--alpha", "0.5"),
        env={"SHIPYARD_RUN_ID": "r123"},
        inputs={"data": data},
    )
    target = LocalTarget()
    result = run(target, job)
    assert result.status == "succeeded" and result.exit_code == 0 and result.succeeded
    log = job.log_path.read_text()
    assert f"args ['--alpha', '0.5'] run r123 cwd {job.project_dir}" in log
    assert f"python {target.python}" in log
    assert (job.outputs_dir / "result.txt").read_text() == "A,B\n1,2\n"
    dest = target.fetch_outputs(
        JobHandle("local", "x", "train", data={"outputs_dir": str(job.outputs_dir)}), tmp_path / "fetched"
    )
    assert (dest / "result.txt").read_text() == "A,B\n1,2\n"


def test_failing_script_reports_exit_code_and_log_tail(tmp_path: Path) -> None:
    job = make_job(
        tmp_path,
        """
        import sys
        for i in range(40):
            print("line", i)
        sys.exit("model did not converge")
        """,
    )
    with pytest.raises(StepFailed) as info:
        run(LocalTarget(), job)
    message = str(info.value)
    assert "exited with code 1 on the local target" in message
    assert "model did not converge" in message and "line 39" in message
    assert "line 5\n" not in message  # a tail, not the whole log
    result = run(LocalTarget(), job, check=False)
    assert (result.status, result.exit_code) == ("failed", 1)
    assert result.log_tail.splitlines()[-1] == "model did not converge"


def test_cancel_stops_the_script_and_its_children(tmp_path: Path) -> None:
    job = make_job(
        tmp_path,
        """
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("child", child.pid, flush=True)
        time.sleep(60)
        """,
    )
    target = LocalTarget(grace_s=2)
    handle = target.submit(job)
    wait_for_text(job.log_path, "child ")
    child = int(job.log_path.read_text().split("child ")[1].split()[0])
    assert target.status(handle) == "running"
    started = time.monotonic()
    target.cancel(handle)
    assert time.monotonic() - started < 2  # SIGTERM was enough
    assert target.status(handle) == "cancelled"
    assert not alive(handle.pid or 0)
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
    result = target.wait(handle, 1)
    assert result.status == "cancelled" and result.exit_code == -signal.SIGTERM


def test_cancel_escalates_to_sigkill(tmp_path: Path) -> None:
    job = make_job(
        tmp_path,
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    target = LocalTarget(grace_s=0.5)
    handle = target.submit(job)
    wait_for_text(job.log_path, "ready")
    target.cancel(handle)
    assert target.wait(handle, 1).exit_code == -signal.SIGKILL


def test_timeout_cancels_and_says_so(tmp_path: Path) -> None:
    job = make_job(tmp_path, "import time\nprint('working', flush=True)\ntime.sleep(60)\n", timeout_s=1)
    target = LocalTarget()
    started = time.monotonic()
    with pytest.raises(StepFailed, match=r"ran longer than timeout_s=1s on the local target") as info:
        run(target, job)
    assert time.monotonic() - started < 10
    assert "working" in str(info.value)
    (process,) = target._jobs.values()
    assert process.proc.poll() is not None


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Python's own Ctrl-C handler for the test, even when the tests were started with SIGINT
    ignored (a background job of a shell without job control, e.g. `nohup make test &`)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_cancels_the_job_then_re_raises(tmp_path: Path, ctrl_c_raises: None) -> None:
    job = make_job(tmp_path, "import os, time\nprint('pid', os.getpid(), flush=True)\ntime.sleep(60)\n")
    target = LocalTarget()

    def press_ctrl_c() -> None:
        # Once the script runs (a fixed delay raced the submission itself on a loaded machine).
        wait_for_text(job.log_path, "pid", timeout=60)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    with pytest.raises(KeyboardInterrupt):
        run(target, job)
    presser.join(5)
    (process,) = target._jobs.values()
    assert process.proc.poll() == -signal.SIGTERM
    assert process.cancelled


def test_secret_reaches_the_process_but_no_file_or_repr(tmp_path: Path) -> None:
    job = make_job(
        tmp_path,
        """
        import hashlib, os, pathlib
        value = os.environ["DB_PASSWORD"]
        out = pathlib.Path(os.environ["SHIPYARD_OUTPUTS"])
        (out / "digest.txt").write_text(hashlib.sha256(value.encode()).hexdigest())
        print("connecting with", value)
        raise SystemExit(f"login failed for {value}")
        """,
        env={"PLAIN": "visible"},
        secret_env={"DB_PASSWORD": SECRET},
    )
    with pytest.raises(StepFailed) as info:
        run(LocalTarget(), job)
    digest = (job.outputs_dir / "digest.txt").read_text()
    assert digest == hashlib.sha256(SECRET.encode()).hexdigest()
    assert SECRET not in str(info.value) and "login failed for ***" in str(info.value)
    assert "connecting with ***" in job.log_path.read_text()
    assert SECRET not in repr(job) and "visible" in repr(job)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


class RemoteLike(LocalTarget):
    """A target whose log lives elsewhere (as on SSH or Ray): run() must copy it into job.log_path."""

    name = "remote-like"

    def submit(self, job: StepJob) -> JobHandle:
        remote_log = job.log_path.with_name("remote-side.log")
        handle = super().submit(replace(job, log_path=remote_log))
        return replace(handle, log_path=None, data={**handle.data, "remote_log": str(remote_log)})

    def logs(self, handle: JobHandle) -> str:
        path = Path(handle.data["remote_log"])
        return path.read_text() if path.is_file() else ""


def test_run_streams_a_remote_log_into_the_job_log(tmp_path: Path) -> None:
    job = make_job(
        tmp_path,
        """
        import time
        print("first", flush=True)
        time.sleep(0.6)
        print("second", flush=True)
        """,
    )
    result = run(RemoteLike(), job)
    assert result.succeeded
    assert job.log_path.read_text() == "first\nsecond\n"
    assert result.log_tail == "first\nsecond"


def test_job_validation(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="relative to the project folder"):
        make_job(tmp_path, "", script="/etc/passwd")
    with pytest.raises(UsageError, match="TOKEN set both as a plain and as a secret"):
        make_job(tmp_path, "", env={"TOKEN": "a"}, secret_env={"TOKEN": "b"})
    with pytest.raises(StepFailed, match="does not exist"):
        LocalTarget().submit(replace(make_job(tmp_path, ""), script="missing.py"))


def test_inputs_json_is_what_the_script_reads(tmp_path: Path) -> None:
    job = make_job(
        tmp_path,
        "import os\nprint(os.environ['SHIPYARD_INPUTS'])\n",
        inputs={"train": tmp_path / "t.csv", "test": tmp_path / "s.csv"},
    )
    run(LocalTarget(), job)
    assert json.loads(job.log_path.read_text()) == {
        "train": str(tmp_path / "t.csv"),
        "test": str(tmp_path / "s.csv"),
    }
