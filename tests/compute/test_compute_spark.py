"""The spark compute target with the real spark-submit (pyspark's own) on local[2].

A Spark session costs several seconds to start on a small host, so four tests start one: a step
that computes something checkable, one that fails, one that holds a secret, one that is cancelled.
The rest check what is decided before anything starts (master, conf, spark-submit, Java).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from compute_support import step_job
from tools import require_tool

from shipyard.compute import spark as spark_module
from shipyard.compute.base import JobHandle, run
from shipyard.compute.spark import DEFAULT_CONF, SparkTarget, find_spark_submit
from shipyard.errors import ConfigError, StepFailed

pytestmark = pytest.mark.integration

SECRET = "spark-secret-5e4d3c2b1a09"
# A quicker JVM for short test jobs (the client-mode driver is spark-submit's own JVM).
FAST_JVM = {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}


@pytest.fixture(scope="module")
def java() -> str:
    return require_tool("java", "openjdk-17-jre-headless")


def target(**kw: object) -> SparkTarget:
    conf = {**FAST_JVM, "spark.sql.shuffle.partitions": "2", **kw.pop("conf", {})}  # type: ignore[dict-item]
    return SparkTarget("local[2]", None, conf, **kw)  # type: ignore[arg-type]


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    if not wait_until(predicate, timeout):
        raise AssertionError(f"{what} did not happen within {timeout:g}s")


def group_members(pgid: int) -> dict[int, str]:
    """pid → command line of every live process in process group `pgid` (zombies left out)."""
    members = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members[int(stat.parent.name)] = cmdline
    return members


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return not group_members(pgid)  # only zombies left, waiting for init to reap them


# -- decided before anything starts ------------------------------------------------------------


@pytest.mark.parametrize(
    "master",
    ["local", "local[2]", "local[*]", "local[4,3]", "spark://head:7077", "yarn", "k8s://https://k:6443"],
)
def test_accepted_masters(master: str) -> None:
    assert SparkTarget(master).master == master


@pytest.mark.parametrize(
    "master", ["", " ", "local [2]", "local[x]", "spark://head", "head:7077", "--master"]
)
def test_wrong_master_is_a_config_error(master: str) -> None:
    with pytest.raises(ConfigError, match="is not a Spark master URL; use local, local\\[N\\]"):
        SparkTarget(master)


def test_conf_defaults_can_be_overridden_and_bad_keys_are_refused() -> None:
    assert SparkTarget().conf == DEFAULT_CONF == {"spark.ui.enabled": "false", "spark.log.level": "WARN"}
    conf = SparkTarget(conf={"spark.ui.enabled": "true", "spark.executor.memory": "2g"}).conf
    assert conf == {"spark.ui.enabled": "true", "spark.log.level": "WARN", "spark.executor.memory": "2g"}
    with pytest.raises(ConfigError, match="conf key 'spark.a=b' is not a Spark property name"):
        SparkTarget(conf={"spark.a=b": "1"})


def test_spark_submit_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = find_spark_submit()
    assert found.parts[-3:] == ("pyspark", "bin", "spark-submit")  # pyspark's own, not PATH's
    assert find_spark_submit(str(found)) == found
    with pytest.raises(ConfigError, match=r"compute.<name>.spark_submit in shipyard.yaml"):
        find_spark_submit(str(tmp_path / "no-spark-submit"))
    monkeypatch.setattr(spark_module, "pyspark_spark_submit", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError) as info:
        find_spark_submit()
    assert "pip install 'shipyard[spark]'" in str(info.value)
    assert "compute.<name>.spark_submit" in str(info.value)


def test_missing_java_is_reported_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = step_job(tmp_path, "print('never runs')\n")
    spark = target()
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(ConfigError) as info:
        spark.submit(job)
    message = str(info.value)
    assert "Java was not found" in message and "openjdk-17-jre-headless" in message and "17" in message
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    with pytest.raises(ConfigError, match=r"JAVA_HOME=.*jdk has no bin/java.*openjdk-17-jre-headless"):
        spark.submit(job)
    assert spark._jobs == {}
    assert not job.log_path.exists() and not job.outputs_dir.exists()


def test_java_older_than_17_is_refused_with_pysparks_spark_submit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check is pyspark 4's (3.5 runs on Java 8 and 11 too): tested as pyspark 4 whatever is installed.
    monkeypatch.setattr(spark_module, "_pyspark_major", lambda: 4)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = bin_dir / "java"  # answers `java -version` as Java 11 does, on stderr
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.22\" 2024-01-16' >&2\n")
    java.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    job = step_job(tmp_path, "print('never runs')\n")
    spark = target()
    with pytest.raises(ConfigError, match=r"is Java 11, and pyspark 4 needs Java 17 or later.*openjdk-17"):
        spark.submit(job)
    assert spark._jobs == {} and not job.log_path.exists()


def test_a_secret_in_the_conf_is_refused(tmp_path: Path, java: str) -> None:
    job = step_job(tmp_path, "print('never runs')\n", secret_env={"API_TOKEN": SECRET})
    spark = target(conf={"spark.hadoop.fs.s3a.secret.key": SECRET})
    with pytest.raises(StepFailed, match="secret API_TOKEN appears in spark-submit's command line"):
        spark.submit(job)
    assert spark._jobs == {} and not job.log_path.exists()


# -- real spark-submit runs ---------------------------------------------------------------------

SUM_STEP = """
import json, os, sys
from pathlib import Path
from pyspark.sql import SparkSession, functions as F

spark = SparkSession.builder.getOrCreate()
inputs = json.loads(os.environ["SHIPYARD_INPUTS"])
scale = int(sys.argv[sys.argv.index("--scale") + 1])
df = spark.read.csv(inputs["data"], header=True, inferSchema=True)
total = df.agg(F.sum("x")).collect()[0][0] * scale
conf = spark.sparkContext.getConf()
worker_python = spark.sparkContext.parallelize([0], 1).map(lambda _: sys.executable).collect()[0]
result = {
    "total": total,
    "rows": df.count(),
    "app": conf.get("spark.app.name"),
    "master": conf.get("spark.master"),
    "ui": conf.get("spark.ui.enabled"),
    "partitions": conf.get("spark.sql.shuffle.partitions"),
    "driver_python": sys.executable,
    "worker_python": worker_python,
    "cwd": os.getcwd(),
}
Path(os.environ["SHIPYARD_OUTPUTS"], "result.json").write_text(json.dumps(result))
print("total is", total, flush=True)
spark.stop()
"""


def test_step_computes_on_spark_and_writes_its_outputs(tmp_path: Path, java: str) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x,y\n" + "".join(f"{i},{i % 7}\n" for i in range(1, 101)))
    job = step_job(tmp_path, SUM_STEP, name="sum", inputs={"data": data}, args=("--scale", "3"))
    spark = target()
    result = run(spark, job)
    assert result.status == "succeeded" and result.exit_code == 0
    out = json.loads((job.outputs_dir / "result.json").read_text())
    assert out["total"] == 3 * 5050 and out["rows"] == 100
    assert out["app"] == "shipyard-sum" and out["master"] == "local[2]"
    assert out["ui"] == "false" and out["partitions"] == "2"
    assert out["driver_python"] == out["worker_python"] == str(spark.python)
    assert out["cwd"] == str(job.project_dir)
    log = job.log_path.read_text()
    assert "total is 15150\n" in log
    assert 'Setting Spark log level to "WARN"' in log
    assert "INFO DAGScheduler" not in log and "INFO SparkContext: Submitted application" not in log
    handle = JobHandle("spark", "x", job.name, data={"outputs_dir": str(job.outputs_dir)})
    fetched = spark.fetch_outputs(handle, tmp_path / "fetched")
    assert json.loads((fetched / "result.json").read_text())["total"] == 15150


def test_failing_step_reports_exit_code_and_exception(tmp_path: Path, java: str) -> None:
    code = """
    from pyspark.sql import SparkSession
    spark = SparkSession.builder.getOrCreate()
    assert spark.range(3).count() == 3
    raise RuntimeError("the model diverged at epoch 7")
    """
    job = step_job(tmp_path, code, name="fails")
    with pytest.raises(StepFailed) as info:
        run(target(), job)
    message = str(info.value)
    assert "step.py exited with code 1 on the spark target" in message
    assert "RuntimeError: the model diverged at epoch 7" in message
    assert "RuntimeError: the model diverged at epoch 7" in job.log_path.read_text()


def test_secret_is_in_the_environment_only_and_masked_in_the_log(tmp_path: Path, java: str) -> None:
    code = """
    import os, time
    from pathlib import Path
    from pyspark.sql import SparkSession
    spark = SparkSession.builder.getOrCreate()
    assert spark.range(3).count() == 3
    print("token is", os.environ["API_TOKEN"], flush=True)
    go = Path(os.environ["SHIPYARD_OUTPUTS"], "go")
    deadline = time.time() + 60
    while not go.exists() and time.time() < deadline:
        time.sleep(0.1)
    spark.stop()
    """
    job = step_job(tmp_path, code, name="secret", secret_env={"API_TOKEN": SECRET})
    spark = target()
    handle = spark.submit(job)
    try:
        wait_for(lambda: "token is" in spark.logs(handle), what="the step printing its token")
        argv = handle.data["argv"]
        assert argv[0] == str(find_spark_submit()) and argv[-1] == str(job.script_path)
        assert not any(SECRET in arg for arg in argv)
        members = group_members(handle.pid)  # type: ignore[arg-type]
        assert any("java" in cmd and "SparkSubmit" in cmd for cmd in members.values()), members
        assert not any(SECRET in cmd for cmd in members.values())
        drivers = [pid for pid, cmd in members.items() if cmd.rstrip().endswith(str(job.script_path))]
        assert drivers, members
        environ = Path(f"/proc/{drivers[0]}/environ").read_bytes()
        assert f"API_TOKEN={SECRET}".encode() in environ.split(b"\0")  # the one way in
        (job.outputs_dir / "go").write_text("")
        assert spark.wait(handle, 60).succeeded
    finally:
        spark.cancel(handle)
    assert "token is ***\n" in job.log_path.read_text()
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert SECRET.encode() not in path.read_bytes(), path


def test_cancel_stops_the_jvm_and_its_python_processes(tmp_path: Path, java: str) -> None:
    code = """
    import time
    from pyspark.sql import SparkSession
    spark = SparkSession.builder.getOrCreate()
    def slow(i):
        print("worker ready", flush=True)
        time.sleep(120)
        return i
    spark.sparkContext.parallelize([1, 2], 2).map(slow).collect()
    """
    job = step_job(tmp_path, code, name="slow")
    spark = target(grace_s=10.0)
    handle = spark.submit(job)
    pgid = handle.pid
    assert pgid is not None
    try:
        wait_for(lambda: spark.logs(handle).count("worker ready") == 2, what="both Spark tasks starting")
        members = group_members(pgid)
        assert any("SparkSubmit" in cmd for cmd in members.values()), members
        # the driver and the Python workers (pyspark's daemon forks them) are in the group too
        assert sum("python" in cmd for cmd in members.values()) >= 2, members
        assert spark.status(handle) == "running"
        spark.cancel(handle)
        result = spark.wait(handle, 5)
    finally:
        spark.cancel(handle)
    left = {} if wait_until(lambda: group_gone(pgid), timeout=15) else group_members(pgid)
    if left:
        os.killpg(pgid, signal.SIGKILL)  # leave nothing behind for the other tests on this host
    assert not left, f"processes of the cancelled job's group still running: {left}"
    assert result.status == "cancelled" and spark.status(handle) == "cancelled"
    assert result.exit_code is not None and result.exit_code != 0
