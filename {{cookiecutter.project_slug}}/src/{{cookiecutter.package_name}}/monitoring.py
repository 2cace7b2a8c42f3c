"""Monitoring stages over the inference table, with the PSI baseline stored with each model version.

* ``baseline`` (called by training): bins fitted on the scored training set, logged as
  ``monitoring/baseline.json`` in the version's run;
* ``monitor`` (a stage): labels that arrived since scoring are filled in, then PSI of every
  input and of the score, and performance metrics on labelled rows, for the latest scored
  period; results go to the ``drift_metrics`` Delta table (rerunning replaces, never duplicates)
  and a PSI chart;
* ``check`` (a stage): does a new, not yet scored batch drift from the champion's baseline?
  Locally it decides whether ``run all`` retrains; on Databricks the retraining job's
  ``condition_task`` reads its ``retrain`` task value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .config import ProjectConfig, load_project
from .contract import load_contracts
from .drift import ColumnDrift, drift, fit_baseline
from .inference import INFERENCE_TABLE, LABEL, batch_keys, champion, label_type, score_frame, scoring_batch
from .runtime import LANDING_VOLUME, Runtime
from .stage import RunContext, StageFailure, StageOutput

DRIFT_TABLE = "drift_metrics"
BASELINE_ARTIFACT = "monitoring/baseline.json"
# The latest registered version's scored training set, as its baseline was fitted on it.
BASELINE_TABLE = "monitoring_baseline_input"
DRIFT_SCHEMA = ("run_id string, model_name string, model_version string, period string, kind string, "
                "name string, value double, threshold double, breached boolean, rows bigint, computed_at timestamp")


def score_column(problem_type: str) -> str:
    """The model output whose distribution is monitored: the probability, or the regression prediction."""
    return "probability" if problem_type == "classification" else "prediction"


def monitored_columns(features: list[str], problem_type: str) -> list[str]:
    return [*features, score_column(problem_type)]


def baseline(scored_training_set: DataFrame, features: list[str], problem_type: str, bins: int) -> dict[str, Any]:
    """The baseline of a model version: its inputs and score over the training set."""
    return {**fit_baseline(scored_training_set, monitored_columns(features, problem_type), bins),
            "score_column": score_column(problem_type), "created_at": datetime.now(UTC).isoformat()}


def load_baseline(version: Any) -> dict[str, Any]:
    import mlflow

    try:
        return mlflow.artifacts.load_dict(f"runs:/{version.run_id}/{BASELINE_ARTIFACT}")
    except Exception as exc:  # MLflow raises several types for a missing artifact
        raise StageFailure(f"model version {version.version} has no drift baseline ({BASELINE_ARTIFACT} in run "
                           f"{version.run_id}). Fix: retrain it with this version of the project") from exc


def _plot(results: list[ColumnDrift], threshold: float, title: str, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = sorted(results, key=lambda r: r.psi)
    fig, ax = plt.subplots(figsize=(8, max(3, 0.32 * len(ordered))))
    ax.barh([r.column for r in ordered], [r.psi for r in ordered],
            color=["#d62728" if r.drifted else "#1f77b4" for r in ordered])
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold}")
    ax.set(title=title, xlabel="PSI against the training baseline")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


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


def performance(batch: DataFrame, project: ProjectConfig) -> tuple[dict[str, float], int]:
    """Metrics on the scored rows whose label is known (empty when none or a single class)."""
    from .training import evaluate

    outputs = ["prediction", "probability"] if project.problem_type == "classification" else ["prediction"]
    labelled = batch.where(F.col(LABEL).isNotNull()).select(LABEL, *outputs).toPandas()
    if labelled.empty or (project.problem_type == "classification" and labelled[LABEL].nunique() < 2):
        return {}, len(labelled)
    return evaluate(project.problem_type, labelled[LABEL].to_numpy(dtype=float), labelled[outputs]), len(labelled)


def monitor(rt: Runtime, ctx: RunContext) -> StageOutput:
    from .registry import HIGHER_IS_BETTER, mlflow_client, threshold_checks

    project = load_project(ctx.root)
    contract = load_contracts(ctx.root)[project.source]
    settings = project.monitoring
    threshold = float(settings["psi_threshold"])
    name = rt.model_name(ctx.model_name or project.model_name)
    if not rt.exists(INFERENCE_TABLE):
        raise StageFailure(f"{rt.table(INFERENCE_TABLE)} does not exist. Fix: run the score stage first")
    keys, timestamp = batch_keys(contract)
    rt.configure_mlflow()
    fill_labels(rt, keys, timestamp, contract.gold_table, project.problem_type)
    period, version_number = _latest_scored(rt, timestamp)
    version = mlflow_client().get_model_version(name, version_number)
    batch = rt.read(INFERENCE_TABLE).where((F.col(timestamp) == F.lit(period))
                                           & (F.col("model_version") == version_number))
    ctx.log(f"  monitor: PSI of {timestamp} {period} scored by version {version_number} against its baseline")
    results = drift(batch, load_baseline(version), threshold)
    metrics, labelled = performance(batch, project)
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
    rt.replace_rows(frame, DRIFT_TABLE, f"model_version = '{version_number}' AND period = '{period}'")
    drifted = [r.column for r in results if r.drifted]
    chart = _plot(results, threshold, f"PSI, {timestamp} {period}, {name} v{version_number}",
                  Path(rt.volume_path(LANDING_VOLUME, "reports", "monitoring", f"psi_{period}_v{version_number}.png")))
    top = sorted(results, key=lambda r: -r.psi)[:3]
    return StageOutput([DRIFT_TABLE], {
        "model": name, "version": version_number, "period": str(period), "rows": results[0].rows if results else 0,
        "drift_detected": bool(drifted), "drifted": ", ".join(drifted) or "none",
        "top_psi": ", ".join(f"{r.column}={r.psi:.3f}" for r in top),
        "performance": ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()) or f"no labels yet ({labelled} rows)",
        "performance_breached": ", ".join(sorted(breached_metrics)) or "none", "chart": chart})


def check(rt: Runtime, ctx: RunContext) -> StageOutput:
    """Decide whether to retrain: no champion yet, or a new batch that drifts from its baseline."""
    project = load_project(ctx.root)
    contract = load_contracts(ctx.root)[project.source]
    name = rt.model_name(ctx.model_name or project.model_name)
    threshold = float(project.monitoring["psi_threshold"])
    try:
        version = champion(rt, name)
    except StageFailure:
        return decide(ctx, True, f"{name} has no @champion yet")
    batch, periods = scoring_batch(rt, project, contract)
    _, timestamp = batch_keys(contract)
    if rt.exists(INFERENCE_TABLE):
        seen = (rt.read(INFERENCE_TABLE).where(F.col(timestamp).isin(periods)
                                               & (F.col("model_version") == str(version.version))).limit(1).count())
        if seen:
            return decide(ctx, False, f"{timestamp} {', '.join(map(str, periods))} was already scored by @champion "
                                      f"version {version.version}: no new batch")
    scored = score_frame(batch, rt.model_location(name, str(version.version)), project.problem_type,
                         *rt.mlflow_uris())
    results = drift(scored, load_baseline(version), threshold)
    drifted = sorted((r for r in results if r.drifted), key=lambda r: -r.psi)
    if drifted:
        listed = ", ".join(f"{r.column} (PSI {r.psi:.3f})" for r in drifted[:5])
        return decide(ctx, True, f"the new batch ({', '.join(map(str, periods))}) drifts from version "
                                 f"{version.version}'s baseline: {listed}")
    top = max(results, key=lambda r: r.psi)
    return decide(ctx, False, f"the new batch is stable against version {version.version}'s baseline (highest PSI "
                              f"{top.column} {top.psi:.3f} < {threshold})")


def decide(ctx: RunContext, retrain: bool, reason: str) -> StageOutput:
    ctx.state["retrain"] = retrain
    ctx.log(f"  check: {'retrain' if retrain else 'no retraining'}: {reason}")
    return StageOutput(details={"retrain": retrain, "reason": reason,
                                "task_values": {"retrain": "true" if retrain else "false"}})
