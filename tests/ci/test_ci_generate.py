"""`shipyard ci generate`: every generated file passes the CI systems' official JSON schemas
(check-jsonschema's vendored copies) and, for GitHub, actionlint; regeneration is byte-identical,
keeps user sections and refuses other edits (the workflows' content: test_ci_workflows.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from ci_support import (  # noqa: F401
    EXAMPLE,
    PROVIDERS,
    STAGED,
    actionlint,
    check_schema,
    diabetes,
    files_of,
    project_at,
    staged,
    yaml_of,
)

from shipyard.ci.generate import generate, render
from shipyard.config.loader import load_project
from shipyard.errors import UsageError


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("which", ["diabetes", "staged"])
def test_every_file_passes_the_official_schema(provider, which, request):
    config = request.getfixturevalue(which)
    files = files_of(config, provider)
    expected = 1 if provider == "gitlab" else (4 if which == "staged" else 3)  # no environments: no release
    assert len(files) == expected
    result = check_schema(provider, [config.project_dir.parent / rel for rel in files])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_schema_check_can_fail(staged, provider):
    out = staged.project_dir.parent
    rel = next(iter(files_of(staged, provider)))
    bad = out / rel
    data = yaml.safe_load(bad.read_text())
    if provider == "github":
        data["jobs"]["checks"]["steps"] = "not a list"
    elif provider == "azure":
        data["jobs"][0]["steps"] = "not a list"
    else:
        data["checks"]["when"] = "sometimes"
    bad.write_text(yaml.safe_dump(data))
    result = check_schema(provider, [bad])
    assert result.returncode == 1, result.stdout


@pytest.mark.parametrize("which", ["diabetes", "staged"])
def test_github_files_pass_actionlint(which, request):
    config = request.getfixturevalue(which)
    binary = actionlint()
    out = config.project_dir.parent
    paths = [str(out / rel) for rel in files_of(config, "github")]
    result = subprocess.run(
        [binary, "-no-color", *paths], capture_output=True, text=True, timeout=60, cwd=out
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("provider", PROVIDERS)
def test_regeneration_is_byte_identical(staged, provider, tmp_path):
    out = staged.project_dir.parent
    first = generate(staged, provider, out)
    assert {r.status for r in first} == {"written"}
    before = {r.path: (out / r.path).read_bytes() for r in first}
    second = generate(staged, provider, out)
    assert {r.status for r in second} == {"unchanged"}
    assert {r.path: (out / r.path).read_bytes() for r in second} == before
    # ... and the same bytes from a fresh load of the same file in another process's worth of state.
    again = load_project(staged.source_file)
    assert {rel: text.encode() for rel, text in render(again, provider, out).items()} == before


def _add_user_step(path: Path, section: str, lines: list[str]) -> None:
    text = path.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(text) if line.strip() == f"# >>> shipyard user section: {section}")
    indent = text[at][: len(text[at]) - len(text[at].lstrip())]
    text[at + 1 : at + 1] = [f"{indent}{line}\n" for line in lines]
    path.write_text("".join(text))


def test_a_user_section_survives_regeneration(staged):
    out = staged.project_dir.parent
    generate(staged, "github", out)
    train = out / ".github/workflows/diabetes-train.yml"
    _add_user_step(train, "train-steps", ["- name: Tell the team", "  run: echo trained"])
    # Change the config so that the generated part changes too.
    source = staged.source_file
    source.write_text(source.read_text().replace('python: "3.12"', 'python: "3.13"'))
    results = generate(load_project(source), "github", out)
    assert {r.path: r.status for r in results}[".github/workflows/diabetes-train.yml"] == "written"
    data = yaml.safe_load(train.read_text())
    steps = data["jobs"]["train"]["steps"]
    assert steps[-1] == {"name": "Tell the team", "run": "echo trained"}
    assert steps[1]["with"]["python-version"] == "3.13"
    # Still ours: the next generate leaves it alone.
    assert {r.status for r in generate(load_project(source), "github", out)} == {"unchanged"}
    assert check_schema("github", [train]).returncode == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_unmarked_edit_is_refused_and_force_overwrites(staged, provider):
    out = staged.project_dir.parent
    files = generate(staged, provider, out)
    target = out / files[-1].path
    section = next(
        line.strip().removeprefix("# >>> shipyard user section: ")
        for line in target.read_text().splitlines()
        if line.strip().startswith("# >>> shipyard user section:")
    )
    _add_user_step(target, section, ["# kept"])
    edited = target.read_text().replace("shipyard reap", "shipyard reap --dry-run")
    assert edited != target.read_text()
    target.write_text(edited)
    with pytest.raises(UsageError) as err:
        generate(staged, provider, out)
    message = str(err.value)
    assert f"{target}: edited outside its user sections" in message
    assert "--force" in message and "# >>> shipyard user section: NAME" in message
    assert target.read_text() == edited  # refused: nothing written
    results = generate(staged, provider, out, force=True)
    assert {r.path: r.status for r in results}[files[-1].path] == "overwritten"
    text = target.read_text()
    assert "--dry-run" not in text and "# kept" in text
    assert {r.status for r in generate(staged, provider, out)} == {"unchanged"}


def test_a_file_that_is_not_ours_is_refused(diabetes):
    out = diabetes.project_dir.parent
    mine = out / ".github/workflows/diabetes-pr.yml"
    mine.parent.mkdir(parents=True)
    mine.write_text("name: hand-written\n")
    with pytest.raises(UsageError, match="not generated by shipyard"):
        generate(diabetes, "github", out)
    assert mine.read_text() == "name: hand-written\n"
