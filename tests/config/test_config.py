"""shipyard.yaml loading, error messages and workspace precedence."""

from pathlib import Path

import pytest

from shipyard.config.loader import load_project, parse_param_overrides, resolve_workspace_settings
from shipyard.errors import ConfigError

MINIMAL = "name: demo\nregistry:\n  model_name: demo-model\n"
EXAMPLE = Path(__file__).parents[2] / "examples" / "diabetes" / "shipyard.yaml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "shipyard.yaml"
    p.write_text(text)
    return p


def test_example_config_loads():
    cfg = load_project(EXAMPLE)
    assert cfg.name == "diabetes"
    assert cfg.registry.model_name == "diabetes-ridge"
    assert cfg.gate.metric == "mse" and cfg.gate.direction == "lower"
    assert cfg.deployment is not None and cfg.deployment.name == "dev"
    assert cfg.train.inputs == {"data": cfg.data_check.path}  # defaulted from the data check


def test_defaults(tmp_path):
    cfg = load_project(write(tmp_path, MINIMAL))
    assert cfg.experiment_name == "demo"
    assert cfg.deployment is None and cfg.data_check is None
    assert cfg.project_dir == tmp_path.resolve()


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (MINIMAL + "gate:\n  direction: up\n", ["gate.direction", "'lower' or 'higher'", "'up'"]),
        (MINIMAL + "gate:\n  metrc: mse\n", ["gate.metrc", "unknown field"]),
        ("name: demo\n", ["registry", "required field is missing"]),
        (MINIMAL + "deployment:\n  port: 99999\n", ["deployment.port", "65535"]),
        ("name: [unclosed\n", ["not valid YAML", "line"]),
        ("- a\n- b\n", ["expected a mapping"]),
    ],
)
def test_errors_name_file_field_and_expectation(tmp_path, text, fragments):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_project(path)
    msg = str(info.value)
    assert str(path) in msg
    for fragment in fragments:
        assert fragment in msg, msg
    assert info.value.exit_code == 2


def test_workspace_precedence_cli_over_env_over_file_over_default(tmp_path):
    cfg = load_project(write(tmp_path, MINIMAL + "workspace:\n  root: from-file\n"))
    default = resolve_workspace_settings(None, env={}, base_dir=tmp_path)
    assert default.root == str(tmp_path.resolve() / ".shipyard")
    assert default.database_uri == f"sqlite:///{tmp_path.resolve() / '.shipyard' / 'shipyard.db'}"
    assert default.artifact_uri == (tmp_path.resolve() / ".shipyard" / "artifacts").as_uri()
    assert resolve_workspace_settings(cfg, env={}).root == str(tmp_path.resolve() / "from-file")
    env = {"SHIPYARD_WORKSPACE": "from-env"}
    assert resolve_workspace_settings(cfg, env=env).root == str(tmp_path.resolve() / "from-env")
    assert resolve_workspace_settings(cfg, cli={"root": "/abs/cli"}, env=env).root == "/abs/cli"
    env_db = {"SHIPYARD_DATABASE_URI": "postgresql://u@h/db"}
    assert resolve_workspace_settings(cfg, env=env_db).database_uri == "postgresql://u@h/db"


def test_workspace_file_section(tmp_path):
    (tmp_path / "ws.yaml").write_text("root: elsewhere\n")
    cfg = load_project(write(tmp_path, MINIMAL + "workspace:\n  file: ws.yaml\n"))
    assert resolve_workspace_settings(cfg, env={}).root == str(tmp_path.resolve() / "elsewhere")


def test_param_overrides_keep_types():
    assert parse_param_overrides(["alpha=0.1", "n=3", "flag=true", "name=ridge"]) == {
        "alpha": 0.1,
        "n": 3,
        "flag": True,
        "name": "ridge",
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_param_overrides(["alpha"])


def test_unsupported_uri_is_a_config_error(tmp_path):
    from shipyard.config.models import WorkspaceSettings
    from shipyard.workspace import Workspace

    with pytest.raises(ConfigError, match="database_uri"):
        Workspace(WorkspaceSettings(root=str(tmp_path), database_uri="redis://x"))
