"""Sail lane: features and training on ingested sample data, tracked in the local MLflow store
and registered with tags, lineage, plots, signature and a model card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }} import pipeline
from {{ cookiecutter.package_name }}.config import load_project
from {{ cookiecutter.package_name }}.contract import load_contracts, source_contract
from {{ cookiecutter.package_name }}.data.inputs import training_inputs

pytestmark = pytest.mark.sail



@pytest.fixture(scope="module")
def trained(sample_lake, tmp_path_factory):
    with sample_lake(tmp_path_factory.mktemp("trained"), "train_tests", ["ingest", "features", "train"]) as lake:
        yield lake


def test_training_registers_a_fully_documented_model_version(trained):
    import mlflow

    _, root, summary = trained
    project = load_project(root)
    details = summary.stages[-1].details
    client = mlflow.MlflowClient()
    version = client.get_model_version(details["model"], details["version"])
    run = client.get_run(version.run_id)

    metrics = {"auc", "pr_auc", "log_loss", "f1"} if project.problem_type == "classification" else {
        "rmse", "mae", "mape"}
    assert metrics <= set(run.data.metrics)
    assert {"seed", "num_boost_round", "learning_rate", "train_rows", "features"} <= set(run.data.params)
    assert run.data.tags["mlflow.source.git.commit"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    plot = "plots/roc_pr_confusion.png" if project.problem_type == "classification" else "plots/residuals.png"
    assert {"plots/feature_importance.png", "plots/shap_summary.png", plot} <= artifacts
    # Explanations: the strongest features by mean |SHAP|, in MLflow and in the card; the sensitive
    # columns of the contract are never model inputs.
    top = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/explanations/top_features.json")
    features = run.data.params["features"].split(",")
    assert top["rows"] > 0 and [f["feature"] for f in top["features"]] and {
        f["feature"] for f in top["features"]} <= set(features)
    assert "## Explanations (SHAP values on the validation period)" in version.description
    assert f"| {top['features'][0]['feature']} |" in version.description
    assert not set(source_contract(root, project.source).sensitive_columns) & set(features)
    inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    expected_inputs = {s for s in json.loads(version.tags["data_versions"])}
    assert set(inputs) == expected_inputs
    assert all(json.loads(d.source)["delta_table_version"] is not None for d in inputs.values())

    assert version.tags["validation_status"] == "pending"
    assert version.tags["git_commit"] == run.data.tags["mlflow.source.git.commit"]
    assert float(version.tags[f"metric_{sorted(metrics)[0]}"]) == pytest.approx(
        run.data.metrics[sorted(metrics)[0]], rel=1e-4)
    assert version.description.startswith("# Model card") and "## Limitations" in version.description

    model_info = mlflow.models.get_model_info(f"models:/{details['model']}/{details['version']}")
    assert model_info.signature is not None and model_info.saved_input_example_info is not None
    local_path = mlflow.artifacts.download_artifacts(f"models:/{details['model']}/{details['version']}")
    requirements = (Path(local_path) / "requirements.txt").read_text()
    assert "lightgbm==" in requirements and "mlflow==" in requirements


def test_the_registered_model_scores_gold_rows(trained):
    import mlflow

    rt, root, summary = trained
    project = load_project(root)
    contract = load_contracts(root)[project.source]
    details = summary.stages[-1].details
    model = mlflow.pyfunc.load_model(f"models:/{details['model']}/{details['version']}")
    rows = training_inputs(rt, project, contract).frame.limit(50).toPandas()  # the features scoring reads
    scored = model.predict(rows)
    assert len(scored) == len(rows)
    if project.problem_type == "classification":
        assert scored["probability"].between(0, 1).all()
    else:
        assert scored["prediction"].notna().all()


def test_retraining_on_the_same_data_versions_reproduces_the_metrics(trained):
    rt, root, summary = trained
    again = pipeline.run_stages(rt, ["train"], log=lambda _: None, root=root)
    assert again.ok
    first, second = summary.stages[-1].details, again.stages[-1].details
    assert second["data_versions"] == first["data_versions"]
    assert second["metrics"] == first["metrics"] and int(second["version"]) == int(first["version"]) + 1


def test_one_model_per_segment_behind_one_routing_model(trained, tmp_path):
    import mlflow
    import yaml

    rt, root, _ = trained
    segmented_root = tmp_path / "segmented"
    shutil.copytree(root, segmented_root)
    project_file = segmented_root / "conf" / "project.yml"
    settings = yaml.safe_load(project_file.read_text())
    contract = load_contracts(segmented_root)[settings["source"]]
    segment = next(c.name for c in contract.columns if c.categorical and c.name in contract.gold.columns)
    settings["training"]["segment_by"] = [segment]
    settings["model_name"] = "segmented_model"
    project_file.write_text(yaml.safe_dump(settings))

    summary = pipeline.run_stages(rt, ["train"], log=lambda _: None, root=segmented_root)
    assert summary.ok, summary.stages[-1].error
    details = summary.stages[-1].details
    client = mlflow.MlflowClient()
    run = client.get_run(details["run_id"])
    children = client.search_runs([run.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert len(children) == int(run.data.metrics["segments_trained"]) >= 2, "each segment logs its own run"

    model = mlflow.pyfunc.load_model(f"models:/segmented_model/{details['version']}")
    gold = training_inputs(rt, load_project(segmented_root), contract).frame.limit(200).toPandas()
    scored = model.predict(gold)
    assert len(scored) == len(gold) and scored["prediction"].notna().all()
    unknown = gold.head(3).assign(**{segment: "never-seen"})
    assert model.predict(unknown)["prediction"].isna().all(), "a segment without a model scores as missing"
