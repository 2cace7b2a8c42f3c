"""The monitor stage over the inference table: labels that arrived since scoring are filled in,
then PSI of every input and of the score against the scoring version's baseline, and performance
metrics on labelled rows, for the latest scored period.  Results go to the ``drift_metrics``
Delta table (rerunning replaces, never duplicates) and a PSI chart.

When ``score`` shadow-scored the period with ``@challenger``, the two are compared on the same
labelled rows (the champion comparison of ``validate``: main metric, ``champion_tolerance``): the
verdict goes to the ``shadow_comparisons`` table and, append-only, to the challenger's MLflow run,
where the promotion gate (``inference.min_shadow_batches``) reads it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..context import RunContext, StageFailure, StageOutput
from ..data.drift import drift
from ..ml.baseline import load_baseline
from ..ml.metrics import HIGHER_IS_BETTER, MAIN_METRIC, champion_check, evaluate, threshold_checks
from ..ml.registry import SHADOW_METRIC, mlflow_client
from ..ml.reports import psi_chart
from ..ml.scoring import label_type
from ..names import DRIFT_TABLE, INFERENCE_TABLE, LABEL, LANDING_VOLUME, SCORE_COLUMNS, SHADOW_TABLE
from ..runtime import Runtime

# This module's stages and their positions in `run all` (see pipeline.py).
ORDER = {"monitor": 110}

DRIFT_SCHEMA = ("run_id string, model_name string, model_version string, period string, kind string, "
                "name string, value double, threshold double, breached boolean, rows bigint, computed_at timestamp")


SHADOW_SCHEMA = ("run_id string, model_name string, period string, champion_version string, "
                 "challenger_version string, metric string, champion_value double, challenger_value double, "
                 "tolerance double, rows bigint, no_worse boolean, compared_at timestamp")


def _latest_scored(rt: Runtime, timestamp: str) -> tuple[Any, str]:
    """The latest period @champion scored and the version that scored it last."""
    row = (rt.read(INFERENCE_TABLE).where(F.col("model_alias") == "champion").orderBy(F.col(timestamp).desc(), F.col("scored_at").desc())
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


def shadow_comparison(scored: DataFrame, keys: list[str], timestamp: str, champion_version: str,
                      problem_type: str, tolerance: float) -> dict[str, Any] | None:
    """@champion against the latest @challenger that shadow-scored the same rows of one period, on the rows
    whose label is known; None when there is no shadow or too few labels to compare."""
    outputs = SCORE_COLUMNS[problem_type]
    shadow = scored.where((F.col("model_alias") == "challenger") & (F.col("model_version") != champion_version))
    latest = shadow.orderBy(F.col("scored_at").desc()).select("model_version").first()
    if latest is None:
        return None
    on = [*keys, timestamp]
    champion = scored.where((F.col("model_alias") == "champion") & (F.col("model_version") == champion_version)
                            & F.col(LABEL).isNotNull()).select(*on, LABEL, *outputs)
    challenger = shadow.where(F.col("model_version") == latest[0]).select(
        *on, *[F.col(c).alias(f"shadow_{c}") for c in outputs])
    both = champion.join(challenger, on).toPandas()
    if both.empty or (problem_type == "classification" and both[LABEL].nunique() < 2):
        return None
    truth, metric = both[LABEL].to_numpy(dtype=float), MAIN_METRIC[problem_type]
    mine = evaluate(problem_type, truth, both[outputs])[metric]
    theirs = evaluate(problem_type, truth, both[[f"shadow_{c}" for c in outputs]].set_axis(outputs, axis=1))[metric]
    check = champion_check(theirs, mine, metric, tolerance)
    return {"challenger_version": str(latest[0]), "metric": metric, "champion_value": mine, "challenger_value": theirs,
            "rows": len(both), "no_worse": check["passed"]}


def period_step(period: Any) -> int:
    """A period as an MLflow metric step, in the period's own order (one verdict per period): a whole
    number as it is, a date or time as seconds since 1970."""
    if isinstance(period, int) and not isinstance(period, bool):
        return period
    try:
        return int(pd.Timestamp(str(period)).timestamp())
    except ValueError as exc:
        raise StageFailure(f"the scored period {period!r} is neither a whole number nor a date or time, so shadow "
                           "batches cannot be counted in order. Fix: give gold.timestamp a date, timestamp or "
                           "integer type in the contract, or set inference.score_challenger: false") from exc


def record_shadow(rt: Runtime, ctx: RunContext, period: Any, champion_version: str,
                  comparison: dict[str, Any]) -> None:
    """The verdict in ``shadow_comparisons`` (a rerun replaces it) and in the challenger's run."""
    step = period_step(period)  # before anything is written: a period it cannot order fails cleanly
    tolerance = float(ctx.project.validation.champion_tolerance)
    now = datetime.now(UTC).replace(tzinfo=None)
    row = (ctx.run_id, ctx.model_name, str(period), champion_version, comparison["challenger_version"],
           comparison["metric"], comparison["champion_value"], comparison["challenger_value"], tolerance,
           comparison["rows"], comparison["no_worse"], now)
    rt.replace_matching(rt.spark.createDataFrame([row], SHADOW_SCHEMA), SHADOW_TABLE, rt.spark.createDataFrame(
        [(comparison["challenger_version"], str(period))], "challenger_version string, period string"))
    client = mlflow_client()
    challenger = client.get_model_version(ctx.model_name, comparison["challenger_version"])
    client.log_metric(challenger.run_id, SHADOW_METRIC, float(comparison["no_worse"]), step=step)


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
    # The period's rows, every alias (the shadow comparison needs them); drift and performance judge @champion's.
    scored = rt.read(INFERENCE_TABLE).where(F.col(timestamp) == F.lit(period))
    batch = scored.where((F.col("model_alias") == "champion") & (F.col("model_version") == version_number))
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
    comparison = shadow_comparison(scored, keys, timestamp, version_number, project.problem_type,
                                   float(project.validation.champion_tolerance))
    tables = [DRIFT_TABLE]
    if comparison is not None:
        record_shadow(rt, ctx, period, version_number, comparison)
        tables.append(SHADOW_TABLE)
        verdict = (f"version {comparison['challenger_version']} {'no worse' if comparison['no_worse'] else 'worse'} "
                   f"than @champion on {comparison['rows']} labelled rows ({comparison['metric']} "
                   f"{comparison['challenger_value']:.4f} vs {comparison['champion_value']:.4f})")
        ctx.log(f"  monitor: shadow {verdict}")
    drifted = [r.column for r in results if r.drifted]
    chart = psi_chart(results, threshold, f"PSI, {timestamp} {period}, {name} v{version_number}",
                  Path(rt.volume_path(LANDING_VOLUME, "reports", "monitoring", f"psi_{period}_v{version_number}.png")))
    top = sorted(results, key=lambda r: -r.psi)[:3]
    return StageOutput(tables, {**({"shadow": verdict} if comparison else {}),
        "model": name, "version": version_number, "period": str(period), "rows": results[0].rows if results else 0,
        "drift_detected": bool(drifted), "drifted": ", ".join(drifted) or "none",
        **({"drift_judged": f"no: {results[0].rows} rows < monitoring.min_rows {min_rows}"}
           if results and results[0].rows < min_rows else {}),
        "top_psi": ", ".join(f"{r.column}={r.psi:.3f}" for r in top),
        "performance": ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()) or f"no labels yet ({labelled} rows)",
        "performance_breached": ", ".join(sorted(breached_metrics)) or "none", "chart": chart})
