"""Every CLI command and option that takes a name refuses hostile names: exit 2, one `error:` line
that shows the value safely, no traceback, and no file written outside the workspace.

The commands are not listed by hand: the test walks the Typer app and picks every argument or
option whose name says it carries a name (NAME_WORDS), so a new command that takes an endpoint,
an alias or a model is covered without remembering to add it here. Parameters that match the words
but hold something else (a path, a URI) are listed in NOT_NAMES with the reason.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest
import typer

from shipyard.cli.main import app, main

pytestmark = pytest.mark.integration

# Words in a parameter's name that mean "this is a name a user gives".
NAME_WORDS = {
    "name", "endpoint", "env", "environment", "alias", "slot", "cluster", "model", "compute",
    "image", "namespace", "version", "step", "workflow", "target",
}  # fmt: skip
# Names that do not contain one of the words.
ALSO_NAMES = {("promote", "to"): "the target environment"}
# Parameters that match a word but are not names (checked as what they are elsewhere).
NOT_NAMES = {
    ("serve", "model_path"): "--model FILE: a path to a model file, read as a file",
    ("package", "image"): "--image is a flag",
}

# What each hostile name tries: leaving the folder, an absolute path, shell and nginx syntax,
# a line break, a NUL, a long name, blanks and dots, Unicode look-alikes.
HOSTILE = [
    "../x",
    "../../../tmp/{token}",
    "{outside}/abs",
    "a;rm -rf ~",
    "$(id)",
    "`id`",
    "x" * 5000,
    "a\nb",
    "x; } server { listen 1;",
    "a b",
    "",
    ".",
    "..",
    "a/../../b",
    "a\x00b",
    "ｄｅｖ",  # fullwidth
    "dеv",  # Cyrillic e
    "dev\n",  # the newline a `$`-anchored regex lets through
]

# Values for the other required parameters of a command, so that only the hostile one is wrong.
FILLERS = {
    "model": "diabetes-ridge",
    "name": "dev",
    "endpoint": "dev",
    "env": "dev",
    "alias": "staging",
    "version": "1",
    "weights": ["blue=100"],
    "promotion_id": "1",
    "workflow": "pr",
    "run_id": "0" * 32,
    "job_id": "000000",
    "image": "abc",
}


def _commands(group, path=()):
    for name, cmd in sorted(group.commands.items()):
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def _takes_a_name(command: str, param) -> bool:
    if getattr(param, "is_flag", False) or (command, param.name) in NOT_NAMES:
        return False
    words = set(param.name.split("_"))
    return bool(words & NAME_WORDS) or (command, param.name) in ALSO_NAMES


def name_parameters() -> list[tuple[tuple[str, ...], object, object]]:
    root = typer.main.get_command(app)
    return [
        (path, cmd, p)
        for path, cmd in _commands(root)
        for p in cmd.params
        if p.param_type_name in ("argument", "option") and _takes_a_name(" ".join(path), p)
    ]


def argv_for(path, cmd, target, value, sandbox: Path) -> list[str]:
    """`shipyard PATH ...` with `value` in `target` and fillers in the other required places."""
    args = list(path)
    options = {o for p in cmd.params for o in getattr(p, "opts", [])}
    if "--project" in options:
        args += ["--project", str(sandbox / "project")]
    if "--workspace" in options:
        args += ["--workspace", str(sandbox / "ws")]
    positionals = []
    for p in cmd.params:
        if p is target:
            given = [value]
        elif p.param_type_name == "argument" and p.required:
            filler = FILLERS.get(p.name, str(sandbox / "project" / "data" / "diabetes.csv"))
            given = filler if isinstance(filler, list) else [filler]
        elif p.param_type_name == "option" and p.required:
            args += [p.opts[0], FILLERS.get(p.name, "dev")]
            continue
        else:
            continue
        if p.param_type_name == "argument":
            positionals += given
        else:
            args += [p.opts[0], value]
    return [*args, "--", *positionals] if positionals else args


def _tree(root: Path, skip: Path) -> dict[str, int]:
    out = {}
    for folder, dirs, files in os.walk(root):
        if Path(folder) == skip:
            dirs.clear()
            continue
        for f in dirs + files:
            p = Path(folder) / f
            if p != skip:
                out[str(p)] = p.lstat().st_size if p.is_file() else -1
    return out


def test_the_walk_finds_the_name_taking_commands():
    found = {(" ".join(path), p.name) for path, _, p in name_parameters()}
    for expected in [
        ("endpoints keys rotate", "endpoint"),
        ("models alias set", "alias"),
        ("models alias set", "name"),
        ("package", "model"),
        ("compute create", "name"),
        ("promote", "to"),
        ("deploy", "slot"),
        ("serve", "model_name"),
        ("env deploy", "env"),
    ]:
        assert expected in found
    assert ("serve", "model_path") not in found


def test_every_name_taking_parameter_refuses_hostile_names(tmp_path, copy_project, monkeypatch):
    copy_project(tmp_path / "project")
    (tmp_path / "outside").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    token = f"shipyard-hostile-{os.getpid()}"
    values = [v.replace("{token}", token).replace("{outside}", str(tmp_path / "outside")) for v in HOSTILE]
    before = _tree(tmp_path, skip=tmp_path / "ws")
    cases = name_parameters()
    # main() as the console script runs it (on a command tree it builds once per process).
    failures, tried = [], 0

    for path, cmd, param in cases:
        for value in values:
            argv = argv_for(path, cmd, param, value, tmp_path)
            out, err = io.StringIO(), io.StringIO()
            tried += 1
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    code = main(argv)
            except BaseException as exc:  # a traceback for the user
                failures.append(f"{' '.join(path)} {param.name}={value[:40]!r}: {type(exc).__name__}: {exc}")
                continue
            lines = [line for line in err.getvalue().splitlines() if line.strip()]
            if code != 2 or len(lines) != 1 or not re.match(r"(?i)error:", lines[0]) or len(lines[0]) > 400:
                failures.append(
                    f"{' '.join(path)} {param.name}={value[:40]!r}: exit {code}, stderr {lines[:3]}"
                )

    after = _tree(tmp_path, skip=tmp_path / "ws")
    created = sorted(set(after) - set(before)) + [
        p for p in before if p not in after or after[p] != before[p]
    ]
    print(f"\nhostile names: {len(cases)} name parameters x {len(values)} names = {tried} commands run")
    assert not failures, f"{len(failures)} of {tried} cases:\n" + "\n".join(failures[:40])
    assert created == [], created
    assert not Path(f"/tmp/{token}").exists()
