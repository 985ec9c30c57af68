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


def assert_one_error_line(res, *expected: str) -> None:
    """`res` is exit 2 with a single `error: ...` line on stderr naming `expected`, no traceback."""
    assert res.code == 2, (res.out, res.err)
    lines = res.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.err
    for text in expected:
        assert text in lines[0]
    assert "Traceback" not in res.err + res.out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--bogus"], ["No such option: --bogus", "run 'shipyard --help' for usage"]),
        (["deploy", "--strategy", "nope"], ["'--strategy'", "'nope'", "'shipyard deploy --help'"]),
        (["models", "show"], ["Missing argument 'name'", "'shipyard models show --help'"]),
        (["deplyo"], ["No such command 'deplyo'", "Did you mean 'deploy'?"]),
        (["run", "--no-cache=3"], ["'--no-cache' does not take a value"]),
    ],
    ids=["unknown-option", "bad-choice", "missing-argument", "unknown-command", "flag-with-value"],
)
def test_argument_errors_exit_2_with_one_line(cli, args, expected):
    res = cli(*args)

    assert_one_error_line(res, *expected)
    assert res.out == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["deploy", "--strategy", "nope", "-o", "json"], "'nope' is not one of"),
        (["models", "show", "--output", "json"], "Missing argument 'name'."),
        (["models", "list", "--output=json", "--bogus"], "No such option: --bogus"),
    ],
    ids=["bad-choice", "missing-argument", "unknown-option"],
)
def test_argument_errors_under_json_output_are_json_on_stdout(cli, args, expected):
    res = cli(*args)

    assert_one_error_line(res, expected)
    payload = res.json()
    assert payload["exit_code"] == 2 and payload["type"] == "UsageError"
    assert expected in payload["error"] and "--help" in payload["hint"]


def test_shipyard_errors_under_json_output_are_json_on_stdout(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SHIPYARD_CACHE_DIR", str(tmp_path / "cache"))

    res = cli("cache", "prune", "--max-size", "lots", "-o", "json")

    assert_one_error_line(res, "--max-size 'lots': expected a size like 500MB")
    assert res.json() == {
        "error": "--max-size 'lots': expected a size like 500MB, 10GB or 2GiB",
        "exit_code": 2,
        "type": "UsageError",
        "hint": None,
    }
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("args", [[], ["models"]], ids=["bare", "bare-group"])
def test_a_command_without_arguments_prints_its_help_and_exits_0(cli, args):
    res = cli(*args)

    assert res.code == 0, res.err
    assert f"Usage: {' '.join(['shipyard', *args])} [OPTIONS] COMMAND [ARGS]..." in res.out
    assert res.err == ""


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["serve", "--help"]])
def test_help_shows_no_type_for_flags(cli, args, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")

    res = cli(*args)

    assert res.code == 0, res.err
    assert "--help" in res.out and "Show this message and exit." in res.out
    assert "<bool>" not in res.out


def test_shell_completion_is_on(cli, monkeypatch):
    # typer detects the shell from the process tree: under `make` that is sh, which it does not
    # support; pretend bash (the flag's value is only used when detection is disabled).
    monkeypatch.setattr("typer.completion._get_shell_name", lambda: "bash")
    res = cli("--show-completion")

    assert res.code == 0, res.err
    assert "_SHIPYARD_COMPLETE=complete_bash" in res.out


def test_ctrl_c_exits_130(cli, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("shipyard.config.azureml.import_azureml", interrupted)

    res = cli("config", "import-azureml", "--deployment-config", "aci.yml")

    assert res.code == 130
    assert res.err.strip() == "interrupted"
