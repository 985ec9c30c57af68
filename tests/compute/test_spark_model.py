"""A Spark ML model end to end on the real spark target (spark-submit, local[2]): the script reads
its input by the `str` path Shipyard hands it, fits a Spark ML pipeline, and logs it with
shipyard.log_model (MLflow's spark flavor); the gate judges it, the load check loads it in a
fresh process, and the served MLflow model (pyfunc, a local Spark session in the server) answers
with the predictions Spark computed in training."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from tools import require_tool

pytestmark = pytest.mark.integration

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
SPARK_TRAIN = '''"""Linear regression on the diabetes data with Spark ML."""

import shipyard
from pyspark.ml import Pipeline
from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.regression import LinearRegression
from pyspark.sql import SparkSession

FEATURES = {features!r}

spark = SparkSession.builder.appName("diabetes").getOrCreate()
with shipyard.start_run(name="train"):
    path = shipyard.input_path("data")
    assert isinstance(path, str), type(path)  # Spark's readers take a str, not a pathlib.Path
    df = spark.read.csv(path, header=True, inferSchema=True)
    train, test = df.randomSplit([0.8, 0.2], seed=42)
    pipeline = Pipeline(stages=[
        VectorAssembler(inputCols=FEATURES, outputCol="features"),
        LinearRegression(featuresCol="features", labelCol="target", regParam=0.01),
    ])
    model = pipeline.fit(train)
    predictions = model.transform(test)
    shipyard.log_metric("mse", RegressionEvaluator(labelCol="target", metricName="mse").evaluate(predictions))
    shipyard.log_metric("eval_rows", predictions.count())
    first = df.limit(2)
    shipyard.log_metric("pred0", model.transform(first).collect()[0]["prediction"])
    shipyard.log_model(model, "model", input_example=first.select(*FEATURES).toPandas())
spark.stop()
'''


def test_a_spark_ml_model_trains_on_spark_registers_and_serves(
    tmp_path: Path, copy_project, shipyard_proc, mlflow_client, teardown_endpoints, example_dir
) -> None:
    require_tool("java", "openjdk-17-jre-headless")
    require_tool("nginx", "nginx")
    project = copy_project(tmp_path / "project")
    (project / "train.py").write_text(SPARK_TRAIN.format(features=FEATURES))
    rows = pd.read_csv(example_dir / "data" / "diabetes.csv").drop(columns="target").iloc[[0, 1]]
    sample = {"dataframe_split": {"columns": FEATURES, "data": rows.to_numpy().tolist()}}
    (project / "sample.json").write_text(json.dumps(sample))
    cfg = project / "shipyard.yaml"
    config = yaml.safe_load(cfg.read_text())
    config["compute"] = {
        "spark": {
            "type": "spark",
            "master": "local[2]",
            "conf": {
                "spark.sql.shuffle.partitions": "2",
                "spark.driver.extraJavaOptions": "-XX:+UseSerialGC",
            },
        }
    }
    config["train"].update(compute="spark", environment=None)
    config["registry"]["model_name"] = "diabetes-spark"
    config["deployment"].update(entry_script=None, input_sample="sample.json", requirements=None)
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    ws = tmp_path / "ws"
    try:
        res = shipyard_proc("run", "--workspace", ws, "-o", "json", cwd=project, timeout=900)
        assert res.code == 0, (res.out + res.err)[-4000:]
        out = json.loads(res.out)
        assert out["gate"]["verdict"] == "passed" and out["endpoint"]["smoke_test"] == "passed"
        client = mlflow_client(ws)
        run = client.get_run(out["run"]["run_id"])
        assert run.data.tags["shipyard.compute"] == "spark" and 2000 < run.data.metrics["mse"] < 4000
        # MLflow's spark flavor logs a run artifact, not an MLflow 3 logged model.
        version = client.get_model_version("diabetes-spark", "1")
        assert version.run_id == run.info.run_id
        import mlflow.artifacts

        mlmodel = yaml.safe_load(mlflow.artifacts.load_text(f"{run.info.artifact_uri}/model/MLmodel"))
        assert "spark" in mlmodel["flavors"] and mlmodel["run_id"] == run.info.run_id

        headers = {"Authorization": f"Bearer {out['new_keys']['primary']}"}
        url = f"{out['endpoint']['url']}/invocations"
        answer = httpx.post(url, json=sample, headers=headers, timeout=120)
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert len(predictions) == 2
        assert predictions[0] == pytest.approx(run.data.metrics["pred0"], rel=1e-6)
    finally:
        teardown_endpoints(ws)
