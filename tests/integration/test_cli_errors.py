"""Mistakes a user can make on the command line: the real console script answers with a message
that names the file and the field, a non-zero exit code, and no traceback."""

from __future__ import annotations

import textwrap

import pytest

pytestmark = pytest.mark.integration


def broken_yaml(project, old: str, new: str) -> None:
    cfg = project / "shipyard.yaml"
    text = cfg.read_text()
    assert old in text
    cfg.write_text(text.replace(old, new))


@pytest.fixture
def project(tmp_path, copy_project):
    return copy_project(tmp_path / "project")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  direction: lower\n", "  direction: up\n", ["gate.direction", "'lower' or 'higher'", "'up'"]),
        ("  threshold: 4000 ", "  treshold: 4000 ", ["gate.treshold", "unknown field"]),
        ("name: diabetes\n", "name: diabetes\ndeploy: {name: dev}\n", ["deploy", "unknown field"]),
        (
            "  model_name: diabetes-ridge\n",
            "  tags: {}\n",
            ["registry.model_name", "required field is missing"],
        ),
    ],
    ids=["bad-direction", "misspelt-field", "unknown-section", "missing-field"],
)
def test_invalid_config_exits_2_naming_file_and_field(project, shipyard_proc, old, new, expected):
    broken_yaml(project, old, new)

    res = shipyard_proc("run", "--workspace", project / "ws", cwd=project)

    assert res.code == 2, res.err
    assert f"{project / 'shipyard.yaml'}: invalid configuration" in res.err
    for text in expected:
        assert text in res.err
    assert "Traceback" not in res.err + res.out
    assert not (project / "ws").exists()  # nothing is created for a config that does not load


def test_yaml_syntax_error_names_the_line(project, shipyard_proc):
    (project / "shipyard.yaml").write_text(
        textwrap.dedent("""\
        name: diabetes
        gate:
          metric: mse
         direction: lower
        """)
    )

    res = shipyard_proc("run", "--project", project, "--workspace", project / "ws")

    assert res.code == 2
    assert f"{project / 'shipyard.yaml'}: line 4" in res.err and "is not valid YAML" in res.err
    assert "Traceback" not in res.err


def test_run_outside_a_project_says_where_to_go(tmp_path, shipyard_proc):
    res = shipyard_proc("run", "--workspace", tmp_path / "ws", cwd=tmp_path)

    assert res.code == 2
    assert "no shipyard.yaml in this folder or its parents" in res.err
    assert "Traceback" not in res.err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--param", "alpha"], "--param 'alpha': expected KEY=VALUE"),
        (
            ["--from", "nope"],
            "--from 'nope': this pipeline's steps are data_check, train, evaluate, register",
        ),
    ],
    ids=["param-without-value", "unknown-step"],
)
def test_bad_run_options_exit_2(project, shipyard_proc, args, expected):
    res = shipyard_proc("run", "--project", project, "--workspace", project / "ws", *args)

    assert res.code == 2, res.err
    assert expected in res.err
    assert "Traceback" not in res.err


def test_models_show_in_an_empty_workspace(tmp_path, shipyard_proc):
    res = shipyard_proc("models", "show", "nope", "--workspace", tmp_path / "ws", cwd=tmp_path)

    assert res.code == 1
    assert "no model named 'nope'; models in this workspace: none registered yet" in res.err
    assert "Traceback" not in res.err
