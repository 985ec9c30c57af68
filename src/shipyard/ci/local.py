"""Run a CI workflow on this machine: the stages of ci/stages.py, in the same order, with the same
shell commands, against the local workspace (`shipyard ci run pr|train|release|schedule`).

What a CI agent does and a laptop does not is told, not faked:
- setup stages (checkout, Python, install) are CI-only: the project folder is the checkout and
  the Python running Shipyard is the environment (its bin folder goes first on PATH, so `python`,
  `shipyard` and `ruff` are this environment's). The install stage's tools are checked up front,
  so a missing `pytest-cov` is one clear error instead of a stage failing half-way;
- publishing is a copy into `<ci.outputs>/published/<artifact>/`, made only when the stage's
  condition holds (for the model: a new version was registered), and the release finds its
  version there the way the CI release downloads the train run's artifact (or takes --version,
  the manual run's input, or --artifact: the train run's artifact where another machine fetched
  it, as a release runner that is not the train runner does). A train run starts without the
  hand-off files of an earlier one, as on a fresh agent, so the release follows the *last* train
  run: after a rejected one there is nothing to release;
- approvals (the CI system's protected environment) are `--approve` or a question on a terminal;
  without either the run refuses before it starts, not half-way through a release.

Jobs run one after another in the plan's order; the first failure stops the run, after which only
what CI would still run runs: stages marked `always` and the rollback job's stage for the
environment whose job failed. Exit code: 0 when everything that ran passed, else 1.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.ci.outputs import registered_version
from shipyard.ci.requirements import missing_tools
from shipyard.ci.stages import ACTOR_VAR, MODEL_ARTIFACT, VERSION_VAR, Job, Stage, Workflow, plan
from shipyard.config.models import ProjectConfig
from shipyard.errors import UsageError
from shipyard.names import shown

WORKFLOWS = ("pr", "train", "release", "schedule")
PUBLISHED = "published"
HANDOFF_FILES = ("run.json", "model.json", "endpoint.json")  # what `shipyard run --outputs` writes
_WHY_CI_ONLY = {
    "checkout": "the project folder is the checkout",
    "setup_python": "the Python running shipyard is used",
    "install": "this environment is used; the tools the stage installs were checked first",
}


@dataclass
class Options:
    """How to run: the answers a CI system gives through its UI and variables."""

    until: str | None = None
    version: str | None = None  # the release's manual input
    artifact: Path | None = None  # the train run's model artifact, fetched from the CI system
    approve: bool = False
    actor: str | None = None
    workspace: str | None = None
    confirm: Callable[[str], bool] | None = None  # asks on a terminal; None: no one to ask


@dataclass
class StageResult:
    job: str
    stage: str
    status: str  # passed | failed | skipped | refused (an approval)
    seconds: float = 0.0
    note: str = ""


@dataclass
class RunResult:
    workflow: str
    results: list[StageResult] = field(default_factory=list)
    stopped_at: str | None = None  # --until
    note: str = ""

    @property
    def failed(self) -> bool:
        return any(r.status == "failed" for r in self.results)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or any(r.status == "refused" for r in self.results) else 0


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def default_actor() -> str:
    """Who approves locally: SHIPYARD_ACTOR, else the OS user."""
    return os.environ.get(ACTOR_VAR) or getpass.getuser()


def select_workflow(config: ProjectConfig, name: str) -> Workflow:
    if name not in WORKFLOWS:
        raise UsageError(f"unknown workflow {shown(name)}: use one of {', '.join(WORKFLOWS)}")
    found = [w for w in plan(config).workflows if w.name == name]
    if not found:
        hint = {
            "release": "add environments: (dev, qa, prod) to shipyard.yaml (docs/environments.md)",
            "schedule": "set ci.reap_cron in shipyard.yaml",
        }[name]
        raise UsageError(f"this project has no {name} workflow: {hint}")
    return found[0]


def stage_names(workflow: Workflow) -> list[str]:
    """What --until accepts: every job and stage name, in order, without repeats."""
    names: list[str] = []
    for job in workflow.jobs:
        names.append(job.name)
        names.extend(s.name for s in job.stages)
    return list(dict.fromkeys(names))


class LocalRunner:
    """One workflow run: jobs in order, each job's stages in order, CI-log-like output."""

    def __init__(self, config: ProjectConfig, workflow: Workflow, options: Options) -> None:
        self.config = config
        self.workflow = workflow
        self.options = options
        self.project_dir = config.project_dir.resolve()
        self.outputs = self.project_dir / config.ci.outputs
        self.secrets = plan(config).secrets
        self.result = RunResult(workflow.name)
        self.job_status: dict[str, str] = {}  # passed | failed | skipped
        self.outputs_of: dict[str, dict[str, str]] = {}  # job → {output name: value}
        self.version: str | None = None
        self.stop = False  # --until reached

    # -- checks before anything runs -------------------------------------------------------------
    def preflight(self) -> None:
        o = self.options
        if o.until is not None and o.until not in stage_names(self.workflow):
            raise UsageError(
                f"--until {shown(o.until)}: the {self.workflow.name} workflow's jobs and stages are "
                f"{', '.join(stage_names(self.workflow))}"
            )
        missing = missing_tools(self.workflow)
        if missing:
            raise UsageError(
                f"the {self.workflow.name} workflow's install stage installs {', '.join(missing)}, which "
                f"this Python ({sys.executable}) lacks: {sys.executable} -m pip install {' '.join(missing)}"
            )
        waits = [j.environment or j.name for j in self._jobs_before_until() if j.approval]
        nothing_to_release = all(j.release for j in self._jobs_before_until() if j.approval) and (
            self._find_version()[0] is None
        )
        if waits and not o.approve and o.confirm is None and not nothing_to_release:
            raise UsageError(
                f"{', '.join(waits)} requires approval and there is no terminal to ask on: pass --approve "
                "(and --by WHO) to give it, as the CI system's protected environment does"
            )

    def _jobs_before_until(self) -> list[Job]:
        jobs = []
        for job in self.workflow.jobs:
            jobs.append(job)
            if self.options.until in (job.name, *(s.name for s in job.stages)):
                break
        return jobs

    # -- environment of the commands -------------------------------------------------------------
    def _env(self, job: Job) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env["PYTHONUNBUFFERED"] = "1"
        if self.options.workspace:
            env["SHIPYARD_WORKSPACE"] = str(Path(self.options.workspace).expanduser().resolve())
        if not job.secrets:  # PR checks run on branch code: CI gives them no workspace secrets
            for name in self.secrets:
                env.pop(name, None)
        if job.release:
            env[VERSION_VAR] = self.version or ""
        if job.approval:
            env[ACTOR_VAR] = self.options.actor or default_actor()
        return env

    # -- running ---------------------------------------------------------------------------------
    def run(self) -> RunResult:
        self.preflight()
        started = time.monotonic()
        _write(f"shipyard ci run {self.workflow.name}: {self.workflow.title} — {self.project_dir}")
        if self.workflow.name == "train":
            self._clean_outputs()
        for job in self.workflow.jobs:
            if self.stop:
                break
            self._job(job)
        self._report(time.monotonic() - started)
        return self.result

    def _clean_outputs(self) -> None:
        """A CI agent starts from a clean checkout: no hand-off files of an earlier run. Only the
        files Shipyard writes there go (ci.outputs may name a folder that holds other things)."""
        found = [self.outputs / n for n in HANDOFF_FILES if (self.outputs / n).is_file()]
        for path in found:
            path.unlink()
        if (self.outputs / PUBLISHED).is_dir():
            shutil.rmtree(self.outputs / PUBLISHED)
            found.append(self.outputs / PUBLISHED)
        if found:
            names = ", ".join(p.name for p in found)
            _write(f"(removed {names} from {self.config.ci.outputs}/: a CI agent starts without them)")

    def _job_should_run(self, job: Job) -> str | None:
        """None when the job runs, else why it is skipped."""
        failed = [n for n, s in self.job_status.items() if s == "failed"]
        if job.condition is not None and job.condition.kind == "failed":
            return None if failed else "no job failed"
        if failed:
            return f"{failed[0]} failed"
        not_ok = [n for n in job.needs if self.job_status.get(n) != "passed"]
        if not_ok:
            return f"needs {', '.join(not_ok)}"
        if job.release and not self.version:
            return "no model version to release"
        return None

    def _job(self, job: Job) -> None:
        why = self._job_should_run(job)
        _write("")
        if why is not None:
            _write(f"--- job {job.name}: {job.title} — skipped ({why})")
            self.job_status[job.name] = "skipped"
            return
        where = f" (environment {job.environment})" if job.environment else ""
        _write(f"=== job {job.name}: {job.title}{where}")
        if job.approval and not self._approved(job):
            # Not a failure: nothing was deployed, so the rollback job has nothing to undo.
            self.result.results.append(StageResult(job.name, "approval", "refused", note="not approved"))
            self.job_status[job.name] = "refused"
            return
        env = self._env(job)
        failed = False
        for stage in job.stages:
            if self.stop:
                break
            res = self._stage(job, stage, env, failed)
            self.result.results.append(res)
            failed = failed or res.status == "failed"
            if self.options.until == stage.name:
                self._stop_here(stage.name)
        self.job_status[job.name] = "failed" if failed else "passed"
        if self.options.until == job.name:
            self._stop_here(job.name)

    def _stop_here(self, name: str) -> None:
        self.stop = True
        self.result.stopped_at = name

    def _approved(self, job: Job) -> bool:
        env = job.environment or job.name
        what = f"{self.config.registry.model_name} v{self.version}" if self.version else "this release"
        if self.options.approve:
            _write(f"approval for {env}: given with --approve by {self.options.actor or default_actor()}")
            return True
        assert self.options.confirm is not None  # preflight refused otherwise
        if self.options.confirm(f"{job.title}: approve {what} for {env}?"):
            _write(f"approval for {env}: given on the terminal by {self.options.actor or default_actor()}")
            return True
        _write(f"approval for {env}: refused; {env} keeps what it serves")
        return False

    def _condition_holds(self, stage: Stage, job: Job, failed: bool) -> str | None:
        """None when the stage runs, else why not (the same rules as the generated CI files)."""
        cond = stage.condition
        if cond is None:
            return "an earlier stage failed" if failed else None
        if cond.kind == "always":
            return None
        if cond.kind == "registered":
            value = self.outputs_of.get(job.name, {}).get("version", "")
            return None if value else "no new model version was registered"
        return None if self.job_status.get(cond.job or "") == "failed" else f"{cond.job} did not fail"

    def _stage(self, job: Job, stage: Stage, env: dict[str, str], failed: bool) -> StageResult:
        why = self._condition_holds(stage, job, failed)
        if why is not None:
            _write(f"--- {stage.name}: {stage.title} — skipped ({why})")
            return StageResult(job.name, stage.name, "skipped", note=why)
        if stage.kind in _WHY_CI_ONLY:
            note = f"CI-only: {_WHY_CI_ONLY[stage.kind]}"
            _write(f"--- {stage.name}: {stage.title} — skipped locally ({note})")
            return StageResult(job.name, stage.name, "skipped", note=note)
        _write(f"==> {stage.name}: {stage.title}")
        started = time.monotonic()
        if stage.kind == "publish":
            ok, note = self._publish(stage)
        elif stage.kind == "resolve_version":
            ok, note = self._resolve()
        else:
            ok, note = self._commands(job, stage, env)
        seconds = time.monotonic() - started
        status = "passed" if ok else "failed"
        _write(f"<== {stage.name} {status} ({seconds:.1f}s){f': {note}' if note else ''}")
        return StageResult(job.name, stage.name, status, seconds, note)

    def _commands(self, job: Job, stage: Stage, env: dict[str, str]) -> tuple[bool, str]:
        script = "\n".join(stage.commands)
        for command in stage.commands:
            _write(f"$ {command}")
        shell = [shutil.which("bash") or "/bin/sh", "-e", "-c", script]
        if stage.output:  # like CI's name="$(command)": stdout is the value, stderr is log
            proc = subprocess.run(shell, cwd=self.project_dir, env=env, capture_output=True, text=True)
            if proc.stderr:
                sys.stdout.write(proc.stderr)
            value = proc.stdout.strip()
            self.outputs_of.setdefault(job.name, {})[stage.output] = value
            _write(f"{stage.output}={value}")
            return proc.returncode == 0, "" if proc.returncode == 0 else f"exit code {proc.returncode}"
        stream = subprocess.Popen(
            shell,
            cwd=self.project_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        try:
            assert stream.stdout is not None
            for line in stream.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
            code = stream.wait()
        except KeyboardInterrupt:  # the child got the same SIGINT; let it finish its cleanup
            stream.wait()
            raise
        return code == 0, "" if code == 0 else f"exit code {code}"

    def _publish(self, stage: Stage) -> tuple[bool, str]:
        dest = self.outputs / PUBLISHED / (stage.artifact or stage.name)
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        copied, missing = [], []
        for rel in stage.files:
            src = self.project_dir / rel
            if src.is_file():
                shutil.copy2(src, dest / src.name)
                copied.append(rel)
            else:
                missing.append(rel)
        where = dest.relative_to(self.project_dir)
        if missing and not stage.coverage:  # as in CI: a missing model file fails, a report warns
            return False, f"missing {', '.join(missing)}"
        warn = f" (missing: {', '.join(missing)})" if missing else ""
        return True, f"{', '.join(copied) or 'nothing'} → {where}/{warn}"

    def _find_version(self) -> tuple[str | None, str]:
        """The release's version: --version (the manual input), else the one the last train run
        published, as CI downloads the train run's artifact; None when there is nothing to release."""
        if self.options.version:
            return self.options.version, f"version {self.options.version} (--version)"
        if self.options.artifact is not None:
            artifact = self.options.artifact
            version = registered_version(artifact)
            if version:
                return version, f"version {version} (the train run's artifact {artifact})"
            return None, f"{artifact} holds no newly registered model version: nothing to release"
        artifact = self.outputs / PUBLISHED / MODEL_ARTIFACT
        version = registered_version(artifact) if artifact.is_dir() else None
        if version:
            return version, f"version {version} (published by the last train run: {artifact.name})"
        return None, "the last train run registered no new model version: nothing to release (--version N)"

    def _resolve(self) -> tuple[bool, str]:
        self.version, note = self._find_version()
        return True, note

    def _report(self, seconds: float) -> None:
        ran = [r for r in self.result.results if r.status != "skipped"]
        failed = [r for r in ran if r.status in ("failed", "refused")]
        _write("")
        if self.result.stopped_at:
            _write(f"stopped after {self.result.stopped_at} (--until)")
        verdict = f"{failed[0].status} at {failed[0].job}/{failed[0].stage}" if failed else "passed"
        _write(f"ci run {self.workflow.name}: {verdict} ({len(ran)} stages ran, {seconds:.1f}s)")


def run_workflow(config: ProjectConfig, name: str, options: Options) -> RunResult:
    """Run workflow `name` of the project locally; see the module docstring."""
    if name != "release" and (options.artifact is not None or options.version is not None):
        raise UsageError(
            f"--artifact and --version choose what a release deploys: not for the {name} workflow"
        )
    return LocalRunner(config, select_workflow(config, name), options).run()
