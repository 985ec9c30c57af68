"""What a workflow's install stages would `pip install` by name, and which of those this Python
lacks: `shipyard ci run` checks that before any stage runs (it never installs into the user's
environment), so a missing tool is one clear error instead of a failure half-way through."""

from __future__ import annotations

import shlex

from shipyard.ci.stages import Workflow

_OPTIONS_WITH_VALUE = (
    "-r",
    "-c",
    "-e",
    "-i",
    "-f",
    "--requirement",
    "--constraint",
    "--editable",
    "--index-url",
    "--extra-index-url",
    "--find-links",
)


def pip_names(command: str) -> list[str]:
    """Distributions a `python -m pip install ...` command installs by name: requirement strings
    only (no -r files, options, paths, URLs or wheel files)."""
    from packaging.requirements import InvalidRequirement, Requirement

    words = shlex.split(command)
    if "pip" not in words or "install" not in words:
        return []
    names, skip = [], False
    for w in words[words.index("install") + 1 :]:
        if skip:
            skip = False
            continue
        if w in _OPTIONS_WITH_VALUE:
            skip = True
            continue
        if w.startswith("-") or "/" in w or w.startswith(".") or w.endswith((".whl", ".tar.gz", ".zip")):
            continue
        try:
            names.append(Requirement(w).name)
        except InvalidRequirement:
            continue
    return names


def missing_tools(workflow: Workflow) -> list[str]:
    """What the workflow's install stages would install that this environment lacks."""
    from importlib.metadata import PackageNotFoundError, version

    missing = []
    for job in workflow.jobs:
        for stage in job.stages:
            if stage.kind != "install":
                continue
            for command in stage.commands:
                for name in pip_names(command):
                    try:
                        version(name)
                    except PackageNotFoundError:
                        missing.append(name)
    return list(dict.fromkeys(missing))
