"""The spark target: `spark-submit` runs the step's script against local[*] or a standalone master.

This is the Databricks analogue without Databricks: the script builds its own SparkSession
(`SparkSession.builder.getOrCreate()` picks up the master, app name and `--conf` values given
here) and otherwise is a plain step script: SHIPYARD_INPUTS, SHIPYARD_OUTPUTS, the job's variables
and secrets arrive in its environment exactly as on the local target.

spark-submit runs in client mode as a local process, so everything else is the local target's:
its own session (process group: `cancel` reaches the JVM, the Python driver and the Python
workers the JVM forks), the log pipe with secrets masked, TERM then KILL. Only the command line
and a few variables differ:

- `spark-submit --master M --name shipyard-<job> --conf k=v ... <script> <args>`; conf values are
  on the command line (visible in `ps`), so they must never hold secrets: those go through
  `StepJob.secret_env`, and submit refuses a command line that contains a secret value.
- PYSPARK_PYTHON / PYSPARK_DRIVER_PYTHON = the Python running Shipyard, so the driver and the
  workers see the same packages. On a standalone cluster whose workers keep Python elsewhere,
  set `conf: {spark.pyspark.python: /path/on/workers}` (Spark prefers it over the variable).
- `spark.ui.enabled=false` (no port taken on a shared host) and `spark.log.level=WARN` (one INFO
  line per stage otherwise; set in Spark 3.5+, applied when the SparkContext starts) unless the
  conf sets them.

spark-submit and Java are looked for before anything starts, so a missing one is a clear
ConfigError rather than a log tail from a shell script.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from shipyard.compute.base import StepJob
from shipyard.compute.local import LocalTarget
from shipyard.errors import ConfigError, StepFailed
from shipyard.secrets.redact import MIN_LENGTH

JAVA_PACKAGE = "openjdk-17-jre-headless"
DEFAULT_CONF = {"spark.ui.enabled": "false", "spark.log.level": "WARN"}
_INSTALL_HINT = "install pyspark (`pip install 'shipyard[spark]'`) or set compute.<name>.spark_submit"
_MASTER_FORMS = "local, local[N], local[*], spark://host:port, yarn or k8s://https://host:port"
_MASTER = re.compile(
    r"local(\[(\*|\d+)(,\d+)?\])?"  # local, local[4], local[*], local[4,2] (with task retries)
    r"|local-cluster\[\d+,\d+,\d+\]"  # Spark's own test mode
    r"|spark://[^\s/:,]+:\d+(,[^\s/:,]+:\d+)*"  # a standalone master (several with ZooKeeper HA)
    r"|yarn"
    r"|k8s://\S+"
)
_CONF_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def check_master(master: str) -> str:
    """`master` if spark-submit can take it, else ConfigError listing the accepted forms."""
    if not isinstance(master, str) or not _MASTER.fullmatch(master):
        raise ConfigError(f"spark target: master {master!r} is not a Spark master URL; use {_MASTER_FORMS}")
    return master


def check_conf(conf: Mapping[str, str]) -> dict[str, str]:
    """The conf as strings; a key spark-submit would split or misread is a ConfigError."""
    for key in conf:
        if not isinstance(key, str) or not _CONF_KEY.fullmatch(key):
            raise ConfigError(
                f"spark target: conf key {key!r} is not a Spark property name (e.g. spark.executor.memory)"
            )
    return {key: str(value) for key, value in conf.items()}


def pyspark_spark_submit() -> Path | None:
    """The spark-submit inside the installed pyspark package, found without importing pyspark."""
    spec = importlib.util.find_spec("pyspark")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "bin" / "spark-submit"
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def find_spark_submit(configured: str | None = None) -> Path:
    """spark-submit: the configured one (a path or a name on PATH), else pyspark's, else PATH's."""
    if configured:
        on_path = shutil.which(configured) if os.sep not in configured else None
        path = Path(on_path or configured).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise ConfigError(
            f"spark target: spark_submit {configured!r} is not an executable file; fix "
            "compute.<name>.spark_submit in shipyard.yaml, or remove it to use the one pyspark installs"
        )
    found = pyspark_spark_submit() or shutil.which("spark-submit")
    if found is None:
        raise ConfigError(f"spark target: spark-submit was not found; {_INSTALL_HINT}")
    return Path(found)


def find_java(env: Mapping[str, str]) -> Path:
    """The java spark-submit will run (spark-class: $JAVA_HOME/bin/java, else java on PATH)."""
    home = env.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if java.is_file() and os.access(java, os.X_OK):
            return java
        raise ConfigError(
            f"spark target: JAVA_HOME={home} has no bin/java; point JAVA_HOME at a Java 17+ installation "
            f"or unset it (Debian: apt-get install {JAVA_PACKAGE})"
        )
    found = shutil.which("java", path=env.get("PATH", os.defpath))
    if found:
        return Path(found)
    raise ConfigError(
        "spark target: Java was not found (no java on PATH and JAVA_HOME is not set), and spark-submit "
        f"runs on the JVM; install Java 17 or later (Debian: apt-get install {JAVA_PACKAGE}; pyspark 4 "
        "needs Java 17+) or set JAVA_HOME"
    )


def java_major(java: Path, env: Mapping[str, str]) -> int | None:
    """Java's major version (8 for 1.8), or None when `java -version` says nothing we can read."""
    try:
        proc = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, env=dict(env), check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _JAVA_VERSION.search(proc.stderr + proc.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _pyspark_major() -> int | None:
    try:
        return int(metadata.version("pyspark").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return None


class SparkTarget(LocalTarget):
    """Runs a job's script with spark-submit (client mode) as a local process."""

    name = "spark"

    def __init__(
        self,
        master: str = "local[*]",
        spark_submit: str | None = None,
        conf: Mapping[str, str] | None = None,
        *,
        python: str | Path | None = None,
        grace_s: float = 5.0,
    ):
        super().__init__(python=python, grace_s=grace_s)
        self.master = check_master(master)
        self.spark_submit = spark_submit
        self.conf = {**DEFAULT_CONF, **check_conf(conf or {})}
        self._java_checked: set[Path] = set()

    @classmethod
    def from_spec(cls, name: str, spec: Any, ws: Any) -> SparkTarget:
        """The master of a compute: entry of type spark."""
        return cls(spec.master, spec.spark_submit, dict(spec.conf))

    def base_environment(self, job: StepJob, python: Path) -> dict[str, str]:
        """The host's variables with PYSPARK_PYTHON and PYSPARK_DRIVER_PYTHON set to the step's
        Python (a host setting would give the driver other packages); the job's env can still set them."""
        env = super().base_environment(job, python)
        env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = str(python)
        return env

    def check_java(self, env: Mapping[str, str], *, bundled: bool) -> Path:
        """The java spark-submit will use; ConfigError when there is none, or (with pyspark 4's own
        spark-submit) when it is older than 17, which Spark would report as UnsupportedClassVersionError."""
        java = find_java(env)
        if bundled and java not in self._java_checked and (_pyspark_major() or 0) >= 4:
            major = java_major(java, env)
            if major is not None and major < 17:
                raise ConfigError(
                    f"spark target: {java} is Java {major}, and pyspark 4 needs Java 17 or later; install "
                    f"{JAVA_PACKAGE} (Debian) and put it first on PATH or in JAVA_HOME"
                )
            self._java_checked.add(java)
        return java

    def command(self, job: StepJob, python: Path, env: Mapping[str, str]) -> list[str]:
        """spark-submit's argv: options, then the script and its arguments. spark-submit and Java are
        found (and checked) here, so that a missing one fails before anything starts."""
        spark_submit = find_spark_submit(self.spark_submit)
        self.check_java(env, bundled=spark_submit == pyspark_spark_submit())
        argv = [str(spark_submit), "--master", self.master, "--name", f"shipyard-{job.name}"]
        for key, value in self.conf.items():
            argv += ["--conf", f"{key}={value}"]
        argv += [str(job.script_path), *job.args]
        for name, value in job.secret_env.items():
            if len(value) >= MIN_LENGTH and any(value in arg for arg in argv):
                raise StepFailed(
                    f"{job.name}: the value of secret {name} appears in spark-submit's command line (a conf "
                    "value or a script argument), where any user of the host can read it; pass it only "
                    "as a secret variable"
                )
        return argv
