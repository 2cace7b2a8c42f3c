"""The monitor stage over the inference table: labels that arrived since scoring are filled in,
then PSI of every input and of the score against the scoring version's baseline, and performance
metrics on labelled rows, for the latest scored period.  Results go to the ``drift_metrics``
Delta table (rerunning replaces, never duplicates) and a PSI chart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..context import RunContext, StageFailure, StageOutput
from ..data.drift import drift
from ..ml.baseline import load_baseline
from ..ml.metrics import HIGHER_IS_BETTER, evaluate, threshold_checks
from ..ml.registry import mlflow_client
from ..ml.reports import psi_chart
from ..ml.scoring import label_type
from ..names import DRIFT_TABLE, INFERENCE_TABLE, LABEL, LANDING_VOLUME, SCORE_COLUMNS
from ..runtime import Runtime

# This module's stages and their positions in `run all` (see pipeline.py).
ORDER = {"monitor": 110}

DRIFT_SCHEMA = ("run_id string, model_name string, model_version string, period string, kind string, "
                "name string, value double, threshold double, breached boolean, rows bigint, computed_at timestamp")


def _latest_scored(rt: Runtime, timestamp: str) -> tuple[Any, str]:
    """The latest scored period and the model version that scored it last."""
    row = (rt.read(INFERENCE_TABLE).orderBy(F.col(timestamp).desc(), F.col("scored_at").desc())
           .select(timestamp, "model_version").first())
    if row is None:
        raise StageFailure(f"{rt.table(INFERENCE_TABLE)} is empty. Fix: run the score stage first")
    return row[0], str(row[1])


def fill_labels(rt: Runtime, keys: list[str], timestamp: str, gold_table: str, problem_type: str) -> None:
    """Copy labels that have arrived in gold into scored rows that lack one."""
    labels = (rt.read(gold_table).where(F.col(LABEL).isNotNull())
              .select(*keys, timestamp, F.col(LABEL).cast(label_type(problem_type)).alias(LABEL)))
    rt.update_columns(labels, INFERENCE_TABLE, [*keys, timestamp], [LABEL], f"t.{LABEL} IS NULL")


def performance(batch: DataFrame, problem_type: str) -> tuple[dict[str, float], int]:
    """Metrics on the scored rows whose label is known (empty when none or a single class)."""
    outputs = SCORE_COLUMNS[problem_type]
    labelled = batch.where(F.col(LABEL).isNotNull()).select(LABEL, *outputs).toPandas()
    if labelled.empty or (problem_type == "classification" and labelled[LABEL].nunique() < 2):
        return {}, len(labelled)
    return evaluate(problem_type, labelled[LABEL].to_numpy(dtype=float), labelled[outputs]), len(labelled)


def run(rt: Runtime, ctx: RunContext) -> StageOutput:
    project, contract, name = ctx.project, ctx.contract, ctx.model_name
    settings = project.monitoring
    threshold = float(settings["psi_threshold"])
    if not rt.exists(INFERENCE_TABLE):
        raise StageFailure(f"{rt.table(INFERENCE_TABLE)} does not exist. Fix: run the score stage first")
    keys, timestamp = contract.gold.entity_keys, contract.gold.timestamp
    rt.configure_mlflow()
    fill_labels(rt, keys, timestamp, contract.gold_table, project.problem_type)
    period, version_number = _latest_scored(rt, timestamp)
    version = mlflow_client().get_model_version(name, version_number)
    batch = rt.read(INFERENCE_TABLE).where((F.col(timestamp) == F.lit(period))
                                           & (F.col("model_version") == version_number))
    ctx.log(f"  monitor: PSI of {timestamp} {period} scored by version {version_number} against its baseline")
    min_rows = int(settings["min_rows"])
    results = drift(batch, load_baseline(version), threshold, min_rows)
    metrics, labelled = performance(batch, project.problem_type)
    checks = threshold_checks({k: v for k, v in metrics.items() if k in HIGHER_IS_BETTER},
                              settings.get("performance") or {})
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [(ctx.run_id, name, version_number, str(period), "psi", r.column, r.psi, threshold, r.drifted, r.rows, now)
            for r in results]
    bounds = {m: b for m, bs in (settings.get("performance") or {}).items() for b in bs.values()}
    breached_metrics = {c["check"].split()[0] for c in checks if not c["passed"]}
    rows += [(ctx.run_id, name, version_number, str(period), "performance", m, float(v), bounds.get(m),
              m in breached_metrics, labelled, now) for m, v in metrics.items()]
    frame = rt.spark.createDataFrame(rows, DRIFT_SCHEMA)
    rt.replace_matching(frame, DRIFT_TABLE, rt.spark.createDataFrame([(str(version_number), str(period))],
                                                                      "model_version string, period string"))
    drifted = [r.column for r in results if r.drifted]
    chart = psi_chart(results, threshold, f"PSI, {timestamp} {period}, {name} v{version_number}",
                  Path(rt.volume_path(LANDING_VOLUME, "reports", "monitoring", f"psi_{period}_v{version_number}.png")))
    top = sorted(results, key=lambda r: -r.psi)[:3]
    return StageOutput([DRIFT_TABLE], {
        "model": name, "version": version_number, "period": str(period), "rows": results[0].rows if results else 0,
        "drift_detected": bool(drifted), "drifted": ", ".join(drifted) or "none",
        **({"drift_judged": f"no: {results[0].rows} rows < monitoring.min_rows {min_rows}"}
           if results and results[0].rows < min_rows else {}),
        "top_psi": ", ".join(f"{r.column}={r.psi:.3f}" for r in top),
        "performance": ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()) or f"no labels yet ({labelled} rows)",
        "performance_breached": ", ".join(sorted(breached_metrics)) or "none", "chart": chart})
