"""The load check before registration: a version is registered only if its bundle loads and
scores its own input sample.

Without it, a model that cannot be loaded (a missing module, a pickle of the wrong class, a
score.py that fails in init()) was registered, passed the gate on its metrics and became
production; the fixed model was then compared with that unservable one. The check assembles the
bundle the package step would build (packaging/bundle.assemble, into a temporary folder: nothing
is recorded or uploaded) and runs `python -m shipyard.serving.loadcheck` on it in its own process,
outside the project folder (a container has only the bundle: a module score.py imports from the
project must be in `deployment.code`), with the deployment's health timeout. It needs a
`deployment:` section (the entry script and the sample); without one there is nothing to load the
model with and the check is skipped, as with `registry.load_check: false`.

The train step runs it right after training (pipeline/steps.load_check): an unloadable model
fails the run there, a broken build rather than a worse candidate, before the evaluate step reads
the champion for its cache key (run later, its seconds widened the window in which a concurrent
run moves `production`). The record keeps `load_check_key`, the deployment files it passed with;
when they changed since a cached train step, evaluate (keyed by them) checks the model again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from shipyard.config.models import ProjectConfig
from shipyard.packaging.bundle import _read_sample, assemble, code_paths
from shipyard.registry.models import ModelVersionInfo
from shipyard.workspace import Workspace

CANDIDATE = "candidate"  # the version folder of the checked bundle: it has no number yet


@dataclass(frozen=True)
class LoadCheck:
    ok: bool
    stage: str  # load | score | bundle | timeout | skipped
    detail: str = ""


def load_check_key(project: ProjectConfig) -> str | None:
    """What the check loads besides the model, for the evaluate step's cache key: the deployment's
    entry script, requirements, sample and code (their content), or None when it is skipped."""
    from shipyard.data.hashing import file_sha256, json_sha256, tree_sha256

    d = project.deployment
    if d is None or not project.registry.load_check:
        return None
    files = [d.entry_script, d.requirements, d.input_sample, *d.code]
    found = {}
    for name in (f for f in files if f):
        path = project.path(name)
        found[name] = tree_sha256(path) if path.is_dir() else file_sha256(path) if path.is_file() else None
    return json_sha256(found)


def check_candidate(ws: Workspace, project: ProjectConfig, run_id: str, model_uri: str) -> LoadCheck:
    """Load `model_uri` the way the deployment would serve it and score the input sample."""
    d = project.deployment
    if d is None or not project.registry.load_check:
        why = "no deployment section" if d is None else "registry.load_check: false"
        return LoadCheck(True, "skipped", why)
    model = ModelVersionInfo(project.registry.model_name, CANDIDATE, run_id, model_uri)
    entry = project.path(d.entry_script) if d.entry_script else None
    requirements = project.path(d.requirements) if d.requirements else None
    sample = _read_sample(project.path(d.input_sample) if d.input_sample else None)
    with tempfile.TemporaryDirectory(prefix="shipyard-loadcheck-") as tmp:
        staging = Path(tmp) / "bundle"
        staging.mkdir()
        assemble(ws, model, staging, entry, requirements, sample, code_paths(project))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_RUN_ID"))}
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "shipyard.serving.loadcheck", str(staging)],
                cwd=tmp,  # not the project: as in a container, only the bundle is there
                env=env,
                capture_output=True,
                text=True,
                timeout=d.health_timeout_s,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return LoadCheck(False, "timeout", f"did not load and score within {d.health_timeout_s:g}s")
    lines = proc.stdout.strip().splitlines()
    try:
        outcome = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        outcome = {}
    if proc.returncode == 0 and outcome.get("ok"):
        return LoadCheck(True, str(outcome.get("stage")))
    detail = outcome.get("error") or (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return LoadCheck(False, str(outcome.get("stage") or "load"), str(detail)[:1500])
