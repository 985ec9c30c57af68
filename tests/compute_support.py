"""A StepJob for the compute tests: `code` as project/step.py under tmp_path, log and outputs
under tmp_path/ws; keyword arguments override any StepJob field."""

from __future__ import annotations

import textwrap
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
