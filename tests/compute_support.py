"""For the compute tests: a StepJob (`code` as project/step.py under tmp_path, log and outputs
under tmp_path/ws; keyword arguments override any StepJob field) and a bare Python for a host."""

from __future__ import annotations

import subprocess
import textwrap
import venv
from pathlib import Path

from shipyard.compute.base import StepJob


def step_job(tmp_path: Path, code: str, name: str = "step", **kw: object) -> StepJob:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "step.py").write_text(textwrap.dedent(code))
    fields: dict[str, object] = {
        "name": name,
        "project_dir": project,
        "script": "step.py",
        "log_path": tmp_path / "ws" / "logs" / f"{name}.log",
        "outputs_dir": tmp_path / "ws" / "outputs" / name,
    }
    fields.update(kw)
    return StepJob(**fields)  # type: ignore[arg-type]


def plain_python(folder: Path) -> Path:
    """A host's Python as a new VM has it: a bare venv (standard library only, no pandas)."""
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    probe = subprocess.run([python, "-c", "import pandas"], capture_output=True, text=True)
    assert probe.returncode == 1 and "No module named 'pandas'" in probe.stderr
    return python
