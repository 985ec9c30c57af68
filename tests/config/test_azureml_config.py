"""Azure ML deployment/inference configs → shipyard.yaml's deployment section, warnings, bad files.

The files are written the way the Azure ML samples (MLOpsPython's diabetes_regression/scoring,
the azureml-core docs' deploymentconfig.json) write them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli import config_cmd
from shipyard.config.azureml import import_azureml
from shipyard.config.conda import requirements_text
from shipyard.config.loader import load_project
from shipyard.errors import ConfigError

AKS = """\
computeType: AKS
autoScaler:
    autoscaleEnabled: True
    minReplicas: 1
    maxReplicas: 3
    refreshPeriodInSeconds: 10
    targetUtilization: 70
authEnabled: True
containerResourceRequirements:
    cpu: 0.5
    memoryInGB: 2
appInsightsEnabled: True
scoringTimeoutMs: 5000
maxConcurrentRequestsPerContainer: 2
maxQueueWaitMs: 5000
sslEnabled: True
"""

ACI = """\
computeType: ACI
containerResourceRequirements:
  cpu: 2
  memoryInGB: 4
"""

# deploymentconfig.json as the Azure ML docs show it (lower-case compute type, data collection).
ACI_JSON = {
    "computeType": "aci",
    "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1.0},
    "authEnabled": True,
    "sslEnabled": False,
    "appInsightsEnabled": False,
    "location": "westeurope",
    "dnsNameLabel": "diabetes-dev",
}

INFERENCE = """\
entryScript: score.py
runtime: python
condaFile: conda_dependencies.yml
extraDockerfileSteps:
schemaFile:
sourceDirectory:
enableGpu: False
baseImage:
baseImageRegistry:
environment: diabetes_regression
"""

CONDA = """\
name: diabetes_regression_training_env
dependencies:
  - python=3.7.*
  - pip
  - conda-forge::numpy=1.18.1=py37_0
  - pandas>=1.0
  - pip:
      - azureml-defaults==1.6.*
      - scikit-learn==0.22.1
      - inference-schema[numpy-support]
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def keys_of(warnings) -> list[str]:
    return [w.key for w in warnings]


def test_aks_config_maps_onto_kubernetes_target(tmp_path):
    fields, warnings = import_azureml(write(tmp_path, "deployment_config_aks.yml", AKS), None, tmp_path)
    assert fields == {
        "target": "kubernetes",
        "autoscale": {"enabled": True, "min_replicas": 1, "max_replicas": 3, "target_cpu_percent": 70},
        "serving": {
            "auth": True,
            "scoring_timeout_ms": 5000,
            "max_concurrent_requests": 2,
            "max_queue_wait_ms": 5000,
        },
        "resources": {"cpu_cores": 0.5, "memory_gb": 2},
    }
    assert keys_of(warnings) == ["autoScaler.refreshPeriodInSeconds", "appInsightsEnabled", "sslEnabled"]
    by_key = {w.key: w for w in warnings}
    assert "/metrics" in by_key["appInsightsEnabled"].reason
    assert "TLS at the router" in by_key["sslEnabled"].reason
    assert "sync-period" in by_key["autoScaler.refreshPeriodInSeconds"].reason
    assert all(w.file == "deployment_config_aks.yml" for w in warnings)


def test_aci_config_maps_onto_container_target(tmp_path):
    fields, warnings = import_azureml(write(tmp_path, "deployment_config_aci.yml", ACI), None, tmp_path)
    assert fields == {"target": "container", "resources": {"cpu_cores": 2, "memory_gb": 4}}
    assert warnings == []


def test_aci_json_with_location_and_dns_label_warns_for_each(tmp_path):
    path = write(tmp_path, "deploymentconfig.json", json.dumps(ACI_JSON))
    fields, warnings = import_azureml(path, None, tmp_path)
    assert fields["target"] == "container" and fields["serving"] == {"auth": True}
    # sslEnabled/appInsightsEnabled are false: they ask for nothing, so no warning.
    assert keys_of(warnings) == ["location", "dnsNameLabel"]
    assert "regions" in warnings[0].reason and "router" in warnings[1].reason


def test_snake_case_and_sdk_parameter_names(tmp_path):
    text = """\
compute_type: aks
container_resource_requirements:
  cpu_cores: 1.5
  memory_in_gb: 3
  cpu_limit: 2
  memoryInGB_limit: 4
autoscale_enabled: false
num_replicas: 4
replica_max_concurrent_requests: 8
max_request_wait_time: 250
namespace: ml-dev
collect_model_data: true
"""
    fields, warnings = import_azureml(write(tmp_path, "deploy.yml", text), None, tmp_path)
    assert fields["resources"] == {"cpu_cores": 1.5, "memory_gb": 3, "cpu_limit": 2, "memory_limit_gb": 4}
    assert fields["autoscale"] == {"enabled": False, "replicas": 4}
    assert fields["serving"] == {
        "max_concurrent_requests": 8,
        "max_queue_wait_ms": 250,
        "capture": {"enabled": True},
    }
    assert fields["kubernetes"] == {"namespace": "ml-dev"}
    assert warnings == []


@pytest.mark.parametrize(
    ("extra", "enabled"),
    [
        ("", True),
        ("numReplicas: 2\n", False),
        ("numReplicas: 2\nautoScaler:\n  autoscaleEnabled: true\n", True),
    ],
)
def test_aks_autoscale_default_follows_azure(tmp_path, extra, enabled):
    fields, _ = import_azureml(write(tmp_path, "d.yml", "computeType: AKS\n" + extra), None, tmp_path)
    assert fields["autoscale"]["enabled"] is enabled


def test_every_unsupported_field_gets_one_warning_without_its_secret(tmp_path):
    text = """\
computeType: AKS
tokenAuthEnabled: true
authEnabled: false
gpuCores: 1
keys:
  primaryKey: s3cr3t-primary
  secondaryKey: s3cr3t-secondary
livenessProbeRequirements:
  periodSeconds: 10
  initialDelaySeconds: 310
computeTargetName: aks-prod
vnetName: net
versionName: v2
trafficPercentile: 20
favouriteColour: blue
"""
    fields, warnings = import_azureml(write(tmp_path, "aks.yml", text), None, tmp_path)
    # Unknown keys first, then the known ones in file order, then the ones that change a setting.
    assert keys_of(warnings) == [
        "favouriteColour",
        "gpuCores",
        "keys.primaryKey",
        "keys.secondaryKey",
        "livenessProbeRequirements.periodSeconds",
        "livenessProbeRequirements.initialDelaySeconds",
        "computeTargetName",
        "vnetName",
        "versionName",
        "trafficPercentile",
        "tokenAuthEnabled",
    ]
    assert fields["serving"]["auth"] is True  # token auth asked for protection: key auth instead
    assert "s3cr3t" not in " ".join(str(w) for w in warnings)
    assert "not an Azure ML field" in warnings[0].reason
    assert "kubernetes.context" in warnings[6].reason


def test_inference_config_and_conda_file(tmp_path):
    azure = tmp_path / "diabetes_regression" / "scoring"
    write(azure, "score.py", "def init(): pass\ndef run(data): return data\n")
    write(azure, "conda_dependencies.yml", CONDA)
    ic = write(azure, "inference_config.yml", INFERENCE)
    fields, warnings = import_azureml(None, ic, tmp_path)
    assert fields == {
        "entry_script": "diabetes_regression/scoring/score.py",
        "requirements": "diabetes_regression/scoring/conda_dependencies.yml",
    }
    assert [(w.file.rsplit("/", 1)[-1], w.key) for w in warnings] == [
        ("inference_config.yml", "environment"),
        ("conda_dependencies.yml", "dependencies[0]"),
        ("conda_dependencies.yml", "dependencies[4].pip[0]"),
    ]
    assert "deployment.image.base" in warnings[1].reason and "3.7" in warnings[1].reason
    assert requirements_text(azure / "conda_dependencies.yml").splitlines()[1:] == [
        "numpy==1.18.1",
        "pandas>=1.0",
        "scikit-learn==0.22.1",
        "inference-schema[numpy-support]",
    ]


def test_inference_source_directory_base_image_and_gpu(tmp_path):
    write(tmp_path, "src/app/score.py", "")
    text = """\
entry_script: score.py
source_directory: src/app
runtime: spark-py
base_image: azureml/base:latest
base_image_registry:
  address: myregistry.example
  username: me
  password: hunter2
enable_gpu: true
extra_docker_file_steps: steps.txt
"""
    fields, warnings = import_azureml(None, write(tmp_path, "ic.yml", text), tmp_path)
    assert fields == {
        "entry_script": "src/app/score.py",
        "image": {"base": "myregistry.example/azureml/base:latest"},
    }
    assert keys_of(warnings) == [
        "base_image_registry.username",
        "base_image_registry.password",
        "enable_gpu",
        "extra_docker_file_steps",
        "source_directory",
        "runtime",
    ]
    assert "hunter2" not in " ".join(str(w) for w in warnings)


@pytest.mark.parametrize(
    ("name", "text", "fragments"),
    [
        ("d.yml", "containerResourceRequirements:\n  cpu: 1\n", ["d.yml", "computeType is missing"]),
        ("d.yml", "computeType: Batch\n", ["d.yml", "computeType", "'Batch'", "ACI or AKS"]),
        ("d.yml", "computeType: AKS\nautoScaler: 3\n", ["d.yml", "autoScaler", "expected a mapping"]),
        ("d.yml", "computeType: [unclosed\n", ["d.yml", "not valid YAML", "line 2"]),
        ("d.yml", "- computeType: AKS\n", ["d.yml", "expected a mapping"]),
        (
            "d.yml",
            "computeType: AKS\nautoScaler:\n  minReplicas: 5\n  maxReplicas: 2\n",
            ["d.yml: autoScaler.minReplicas", "d.yml: autoScaler.maxReplicas", "above max_replicas"],
        ),
        ("d.yml", "computeType: AKS\nnamespace: Not_Valid\n", ["d.yml: namespace", "pattern"]),
        (
            "d.yml",
            "computeType: AKS\ncpu_cores: 1\ncontainerResourceRequirements:\n  cpu: 2\n",
            ["same field"],
        ),
        (
            "d.yml",
            "computeType: ACI\ncontainerResourceRequirements:\n  cpu: lots\n",
            ["containerResourceRequirements.cpu"],
        ),
    ],
)
def test_bad_deployment_configs_name_file_and_key(tmp_path, name, text, fragments):
    with pytest.raises(ConfigError) as info:
        import_azureml(write(tmp_path, name, text), None, tmp_path)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("entryScript: missing.py\n", ["ic.yml", "entryScript", "missing.py", "does not exist"]),
        ("condaFile: env.yml\n", ["condaFile", "env.yml", "does not exist"]),
    ],
)
def test_bad_inference_configs(tmp_path, text, fragments):
    with pytest.raises(ConfigError) as info:
        import_azureml(None, write(tmp_path, "ic.yml", text), tmp_path)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_bad_conda_file(tmp_path):
    write(tmp_path, "env.yml", "dependencies:\n  - {conda: numpy}\n")
    with pytest.raises(ConfigError) as info:
        import_azureml(None, write(tmp_path, "ic.yml", "condaFile: env.yml\n"), tmp_path)
    assert "env.yml: dependencies[0]" in str(info.value)


PROJECT = """\
name: demo
registry:
  model_name: demo-model
deployment:
  name: dev
  azureml:
    deployment_config: azure/deployment_config_aks.yml
    inference_config: azure/inference_config.yml
"""


def _azure_project(tmp_path: Path, extra: str = "") -> Path:
    write(tmp_path, "azure/deployment_config_aks.yml", AKS)
    write(tmp_path, "azure/inference_config.yml", INFERENCE)
    write(tmp_path, "azure/conda_dependencies.yml", CONDA)
    write(tmp_path, "azure/score.py", "")
    return write(tmp_path, "shipyard.yaml", PROJECT + extra)


def test_project_imports_azureml_files_and_explicit_fields_win(tmp_path, caplog):
    extra = (
        "  resources:\n    cpu: 4\n  serving:\n    scoringTimeoutMs: 900\n    workers: 2\n"
        "  entry_script: azure/score.py\n"
    )
    with caplog.at_level(logging.WARNING, logger="shipyard.config"):
        cfg = load_project(_azure_project(tmp_path, extra))
    d = cfg.deployment
    assert d.target == "kubernetes"
    assert (d.resources.cpu_cores, d.resources.memory_gb) == (4, 2)  # explicit cpu, imported memory
    assert (d.serving.scoring_timeout_ms, d.serving.workers, d.serving.max_queue_wait_ms) == (900, 2, 5000)
    assert d.autoscale.enabled and d.autoscale.max_replicas == 3
    assert d.requirements == "azure/conda_dependencies.yml"
    assert d.azureml.deployment_config == "azure/deployment_config_aks.yml"
    assert any("appInsightsEnabled" in w for w in cfg.config_warnings)
    assert len(cfg.config_warnings) == 6
    logged = [r.getMessage() for r in caplog.records if r.name == "shipyard.config"]
    assert sorted(logged) == sorted(f"warning: {w}" for w in cfg.config_warnings)
    caplog.clear()
    load_project(tmp_path / "shipyard.yaml")  # the same warnings are said once per process
    assert not [r for r in caplog.records if r.name == "shipyard.config"]


def test_project_azureml_section_errors(tmp_path):
    path = write(
        tmp_path, "shipyard.yaml", PROJECT.replace("    inference_config: azure/inference_config.yml\n", "")
    )
    with pytest.raises(ConfigError) as info:
        load_project(path)
    assert "deployment_config_aks.yml" in str(info.value) and "cannot read" in str(info.value)
    path.write_text("name: demo\nregistry:\n  model_name: m\ndeployment:\n  azureml: {}\n")
    with pytest.raises(ConfigError) as info:
        load_project(path)
    assert "deployment.azureml" in str(info.value) and "inference_config" in str(info.value)
    path.write_text("name: demo\nregistry:\n  model_name: m\ndeployment:\n  azureml:\n    deploy_config: x\n")
    with pytest.raises(ConfigError) as info:
        load_project(path)
    assert "deployment.azureml.deploy_config" in str(info.value)


def test_cli_import_azureml_prints_block_and_warnings(tmp_path, monkeypatch):
    _azure_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    args = ["import-azureml", "--deployment-config", "azure/deployment_config_aks.yml"]
    result = runner.invoke(config_cmd.app, [*args, "--inference-config", "azure/inference_config.yml"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("deployment:\n  target: kubernetes\n")
    assert "entry_script: azure/score.py" in result.stdout
    assert "warning: azure/deployment_config_aks.yml: appInsightsEnabled:" in result.stderr
    as_json = runner.invoke(config_cmd.app, [*args, "--output", "json"])
    data = json.loads(as_json.stdout)
    assert data["deployment"]["resources"] == {"cpu_cores": 0.5, "memory_gb": 2}
    assert [w["key"] for w in data["warnings"]] == [
        "autoScaler.refreshPeriodInSeconds",
        "appInsightsEnabled",
        "sslEnabled",
    ]
    bad = runner.invoke(
        config_cmd.app, ["import-azureml", "--deployment-config", "azure/inference_config.yml"]
    )
    assert isinstance(bad.exception, ConfigError) and "computeType is missing" in str(bad.exception)
