"""Sail lane: the local loop after training: promote, score, monitor, and the retraining check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pyspark.sql import functions as F

from {{ cookiecutter.package_name }} import pipeline
from {{ cookiecutter.package_name }}.config import load_project
from {{ cookiecutter.package_name }}.context import StageFailure
from {{ cookiecutter.package_name }}.contract import load_contracts
from {{ cookiecutter.package_name }}.data.inputs import scoring_inputs
from {{ cookiecutter.package_name }}.data.validation import model_input_gate
from {{ cookiecutter.package_name }}.ml import registry
from {{ cookiecutter.package_name }}.ml.baseline import score_column
from {{ cookiecutter.package_name }}.names import (
    DRIFT_TABLE,
    INFERENCE_TABLE,
    INGEST_METRICS_TABLE,
    INVENTORY_TABLE,
    PACKAGE,
    SHADOW_TABLE,
)

pytestmark = pytest.mark.sail
LOOP = ["check", "train", "validate", "promote", "score", "monitor"]
# ``looped`` (tests/conftest.py): the lake after one run of LOOP, shared with tests/test_report.py.


@contextmanager
def champion_copy_as_challenger(root: Path) -> Iterator[tuple[Any, str, Any, Any]]:
    """A new version with the champion's files (the same answers) as @challenger, for as long as the
    test needs it: (client, model name, the champion, the copy)."""
    client = registry.mlflow_client()
    name = load_project(root).model_name
    champion = client.get_model_version_by_alias(name, "champion")
    copy = client.create_model_version(name, champion.source, run_id=champion.run_id)
    client.set_registered_model_alias(name, "challenger", copy.version)
    try:
        yield client, name, champion, copy
    finally:
        client.delete_registered_model_alias(name, "challenger")


def run(rt, root, stages):
    summary = pipeline.run_stages(rt, stages, log=lambda _: None, root=root)
    assert summary.ok, [s.error for s in summary.stages]
    return {s.name: s.details for s in summary.stages}


def test_first_run_trains_promotes_scores_and_monitors(looped):
    import mlflow

    rt, root, summary = looped
    details = {s.name: s.details for s in summary.stages}
    assert details["check"]["retrain"] is True and "no @champion" in details["check"]["reason"]
    assert details["promote"]["promoted"] is True and details["promote"]["champion"] == details["train"]["version"]
    name = load_project(root).model_name
    assert str(mlflow.MlflowClient().get_model_version_by_alias(name, "champion").version) == details["train"]["version"]

    contract = load_contracts(root)[load_project(root).source]
    keys, timestamp = contract.gold.entity_keys, contract.gold.timestamp
    scored = rt.read(INFERENCE_TABLE).toPandas()
    batch, periods = scoring_inputs(rt, load_project(root), contract)
    assert len(scored) == batch.count() == details["score"]["inserted"] > 0
    assert set(scored[timestamp].astype(str)) == {str(p) for p in periods}
    assert not scored.duplicated([*keys, timestamp]).any()
    assert {"prediction", "model_name", "model_version", "model_alias", "scored_at", "label"} <= set(scored.columns)
    assert (scored["model_alias"] == "champion").all() and scored["prediction"].notna().all()
    if load_project(root).problem_type == "classification":
        assert scored["probability"].between(0, 1).all()
        assert set(scored["prediction"].unique()) <= {0, 1}
    assert scored["label"].notna().all(), "the monitor stage copies labels that have arrived in gold"

    metrics = rt.read(DRIFT_TABLE).toPandas()
    psi_rows = metrics[metrics["kind"] == "psi"]
    assert details["score"]["model"] == name
    assert score_column(load_project(root).problem_type) in set(psi_rows["name"])
    assert (psi_rows["rows"] == len(scored)).all()
    assert set(metrics[metrics["kind"] == "performance"]["name"]) >= (
        {"auc", "log_loss"} if load_project(root).problem_type == "classification" else {"rmse", "mape"})


def figures(path: str | Path) -> dict[str, list]:
    """A textfile's samples by family, as Prometheus reads them."""
    return {family.name: family.samples for family in text_string_to_metric_families(Path(path).read_text())}


def test_the_run_exports_its_figures_in_the_prometheus_format(looped):
    """The lake's runs wrote textfiles: the loop's (this module's run, or its rerun) and, copied with
    the session's medallion, the ingest run's; every family is there with values the tables agree with."""
    import mlflow

    rt, root, summary = looped
    loop = figures(summary.metrics_file)
    (info,) = loop["mlops_run_info"]
    run_id, name = info.labels["run_id"], load_project(root).model_name
    assert info.labels["selection"] == "+".join(LOOP) and loop["mlops_run_success"][0].value == 1.0
    durations = {s.labels["stage"]: s.value for s in loop["mlops_stage_duration_seconds"]}
    assert set(durations) == set(LOOP) and all(v >= 0 for v in durations.values())
    states = {s.labels["stage"]: s.labels["mlops_stage_status"] for s in loop["mlops_stage_status"] if s.value == 1}
    assert states["score"] == states["monitor"] == "succeeded" and set(states.values()) <= {"succeeded", "skipped"}

    champion = mlflow.MlflowClient().get_model_version_by_alias(name, "champion")
    aliases = {s.labels["alias"]: s.value for s in loop["mlops_model_alias_version"]}
    assert aliases["champion"] == float(champion.version)
    logged = mlflow.MlflowClient().get_run(champion.run_id).data.metrics
    metrics = {s.labels["metric"]: s.value for s in loop["mlops_model_metric"]
               if s.labels["version"] == str(champion.version)}
    main = "auc" if load_project(root).problem_type == "classification" else "rmse"
    assert metrics[main] == pytest.approx(logged[main])

    psi = rt.read(DRIFT_TABLE).where((F.col("run_id") == run_id) & (F.col("kind") == "psi")).toPandas()
    (highest,) = loop["mlops_monitor_psi_max"]
    assert highest.value == pytest.approx(psi["value"].max()) and len(loop["mlops_monitor_psi"]) == len(psi)
    assert loop["mlops_monitor_drift_detected"][0].value == float(psi["breached"].any())

    (ingest_file,) = Path(rt.metrics_dir()).glob(f"{PACKAGE}_*_ingest+features.prom")
    ingest = figures(ingest_file)
    batches = rt.read(INGEST_METRICS_TABLE).toPandas()
    assert len(ingest["mlops_ingest_rows_in"]) == len(batches) > 0
    for row in batches.itertuples():
        where = {"source": row.source, "batch": str(row.batch_to)}

        def value(family: str, where: dict = where) -> float:
            (sample,) = [s for s in ingest[family] if s.labels.items() >= where.items()]
            return sample.value

        assert value("mlops_ingest_rows_in") == row.raw_records > 0
        assert value("mlops_ingest_rows_in") == sum(value(f"mlops_ingest_rows_{kind}") for kind in (
            "out", "quarantined", "malformed", "duplicates")), "the accounting closes"
        rate = value("mlops_ingest_quarantine_rate")
        assert rate == pytest.approx(row.quarantine_rate) and 0 <= rate <= value("mlops_ingest_quarantine_threshold")
        assert value("mlops_ingest_gate_passed") == 1.0


def test_the_inventory_has_one_row_per_version_and_a_rerun_replaces_it(looped):
    """A second version (the champion's files, never scored) as @challenger: one row each, with its
    aliases, training data versions and last scoring time; a second inventory replaces the rows."""
    rt, root, _ = looped
    with champion_copy_as_challenger(root) as (client, name, champion, extra):
        versions = {int(v.version) for v in client.search_model_versions(f"name = '{name}'")}
        details = run(rt, root, ["inventory"])["inventory"]
        first = rt.read(INVENTORY_TABLE).toPandas().set_index("version")
        assert details["versions"] == len(first) == len(versions) >= 2 and set(first.index) == versions
        assert list(first.loc[int(champion.version), "aliases"]) == ["champion"]
        assert list(first.loc[int(extra.version), "aliases"]) == ["challenger"]
        row = first.loc[int(champion.version)]
        assert row["validation_status"] == "passed" and row["approval"] == "approved"
        assert dict(row["training_data_versions"]) and all(v >= 0 for v in dict(row["training_data_versions"]).values())
        assert row["main_metric_value"] == pytest.approx(dict(row["metrics"])[row["main_metric"]])
        assert {"mlflow", "lightgbm", "pandas", "pyspark"} <= set(dict(row["library_versions"]))
        assert "the logged model (training): package, mlflow" in row["versions_from"]
        assert any(h["alias"] == "champion" for h in json.loads(row["alias_history"]))
        assert pd.notna(row["last_scored_at"]) and pd.isna(first.loc[int(extra.version), "last_scored_at"])

        run(rt, root, ["inventory"])
        again = rt.read(INVENTORY_TABLE).toPandas().set_index("version")
        assert sorted(again.index) == sorted(first.index), "replaced, never duplicated"
        assert (again["inventoried_at"] > first["inventoried_at"]).all()
        assert again["versions_from"].equals(first["versions_from"])


def test_scoring_and_monitoring_reruns_are_idempotent(looped):
    rt, root, _ = looped
    before = rt.read(INFERENCE_TABLE).orderBy(*rt.read(INFERENCE_TABLE).columns).toPandas()
    metrics_before = rt.read(DRIFT_TABLE).count()
    details = run(rt, root, LOOP)
    assert details["check"]["retrain"] is False and "already scored" in details["check"]["reason"]
    assert "skipped" in details["train"] and "skipped" in details["promote"]
    assert details["score"]["inserted"] == 0
    after = rt.read(INFERENCE_TABLE).orderBy(*rt.read(INFERENCE_TABLE).columns).toPandas()
    assert after.equals(before)
    assert rt.read(DRIFT_TABLE).count() == metrics_before


def test_the_data_gate_fails_closed_on_bad_inference_inputs(looped):
    rt, root, _ = looped
    project = load_project(root)
    contract = load_contracts(root)[project.source]
    batch, _ = scoring_inputs(rt, project, contract)
    bounded = next(c for c in contract.columns if c.min is not None and c.name in batch.columns)
    broken = batch.withColumn(bounded.name, F.when(F.monotonically_increasing_id() % 5 == 0, F.lit(bounded.min - 1))
                              .otherwise(F.col(bounded.name)).cast(batch.schema[bounded.name].dataType))
    assert model_input_gate(batch, contract, "inference")["failed"] == 0
    with pytest.raises(StageFailure, match=f"data gate on the inference inputs failed.*{bounded.name}"):
        model_input_gate(broken, contract, "inference")


def test_shadow_scoring_compares_the_challenger_and_feeds_the_promotion_gate(looped):
    """A second version of the champion's model (the same artifacts, so the same answers) as @challenger:
    score shadow-scores it on the same rows, monitor compares the two on labelled rows and records the
    verdict where the promotion gate reads it; a rerun adds nothing."""
    rt, root, _ = looped
    with champion_copy_as_challenger(root) as (client, name, _, second):
        assert "batch(es), 0 of the latest 0 worse" in registry.shadow_shortfall(client, name, second, 1)
        details = run(rt, root, ["score", "monitor"])
        assert details["score"]["shadow_version"] == str(second.version)
        scored = rt.read(INFERENCE_TABLE).toPandas()
        shadow = scored[scored["model_alias"] == "challenger"]
        assert details["score"]["shadow_inserted"] == len(shadow) == (scored["model_alias"] == "champion").sum()
        assert set(shadow["model_version"]) == {str(second.version)} and shadow["label"].notna().all()
        compared = rt.read(SHADOW_TABLE).toPandas()
        assert len(compared) == 1 and compared["no_worse"].all()
        assert compared["challenger_value"].iloc[0] == pytest.approx(compared["champion_value"].iloc[0])
        assert f"version {second.version} no worse than @champion" in details["monitor"]["shadow"]
        assert registry.shadow_shortfall(client, name, second, 1) is None
        assert "latest 2 to be no worse" in registry.shadow_shortfall(client, name, second, 2)

        again = run(rt, root, ["score", "monitor"])
        assert again["score"]["inserted"] == again["score"]["shadow_inserted"] == 0
        assert rt.read(SHADOW_TABLE).count() == 1
        assert registry.shadow_shortfall(client, name, second, 1) is None  # one verdict per batch, not per run
        assert "latest 2" in registry.shadow_shortfall(client, name, second, 2)
