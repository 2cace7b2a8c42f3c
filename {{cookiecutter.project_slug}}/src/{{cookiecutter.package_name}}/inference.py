"""Batch inference with the ``@champion`` model.

* ``scoring_batch``: the rows to score, built by the same feature path as training (the
  point-in-time lookup on the feature table, or gold), for the latest ``inference.batch_periods``
  periods of gold;
* ``score_frame``: ``mapInPandas`` that loads the model once per partition and appends the
  prediction (and the probability for classification);
* ``score`` (a stage): the data gate on the inputs, then an insert-only MERGE into the inference
  table keyed by entity, period and model version, so rerunning a batch never duplicates.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .config import ProjectConfig, load_project
from .contract import Contract, load_contracts
from .features import feature_spec
from .runtime import Runtime
from .stage import RunContext, StageFailure, StageOutput

INFERENCE_TABLE = "inference_log"
LABEL = "label"
SCORE_COLUMNS = {"classification": ["prediction", "probability"], "regression": ["prediction"]}


def label_type(problem_type: str) -> str:
    """The label's type in the inference table: that of the prediction, as Lakehouse Monitoring expects."""
    return "int" if problem_type == "classification" else "double"


def batch_keys(contract: Contract) -> tuple[list[str], str]:
    """Entity keys (without the period) and the period column of the gold table."""
    return contract.gold.entity_keys, contract.gold.timestamp


def latest_periods(gold: DataFrame, timestamp: str, periods: int) -> list[Any]:
    rows = gold.select(timestamp).distinct().orderBy(F.col(timestamp).desc()).limit(periods).collect()
    return sorted(r[0] for r in rows)


def model_inputs(rt: Runtime, project: ProjectConfig, contract: Contract, spine: DataFrame) -> DataFrame:
    """Feature rows for ``spine`` (keys, period, label) by the training path; the label is kept."""
    keys, timestamp = batch_keys(contract)
    if project.feature_store:
        spec = feature_spec(contract, project.lookback_days)
        if not rt.exists(spec.table):
            raise StageFailure(f"{rt.table(spec.table)} does not exist. Fix: run the features stage first")
        return rt.training_set(spine, spec.table, keys, timestamp, spec.lookback)
    gold = rt.read(contract.gold_table).drop("_batch_id", LABEL)
    return spine.join(gold, on=[*keys, timestamp], how="inner")


def scoring_batch(rt: Runtime, project: ProjectConfig, contract: Contract) -> tuple[DataFrame, list[Any]]:
    """Model inputs of the latest periods of gold, and those periods."""
    if not rt.exists(contract.gold_table):
        raise StageFailure(f"{rt.table(contract.gold_table)} does not exist. Fix: run the ingest stages first")
    keys, timestamp = batch_keys(contract)
    gold = rt.read(contract.gold_table)
    periods = latest_periods(gold, timestamp, int(project.inference.get("batch_periods", 1)))
    if not periods:
        raise StageFailure(f"{rt.table(contract.gold_table)} is empty; there is nothing to score")
    spine = gold.where(F.col(timestamp).isin(periods)).select(*keys, timestamp, LABEL)
    return model_inputs(rt, project, contract, spine).drop(LABEL), periods


CHUNK_ROWS = 100_000


def score_frame(df: DataFrame, model_location: str, problem_type: str, tracking_uri: str,
                registry_uri: str) -> DataFrame:
    """Append the model's outputs to every row.  Each partition loads the model once, on its first
    batch, and predicts on chunks of up to ``CHUNK_ROWS`` rows: Arrow hands over ~10k-row
    batches, and a call per batch would spend more time in per-call overhead than in LightGBM."""
    outputs = SCORE_COLUMNS[problem_type]
    schema = ", ".join([f"`{f.name}` {f.dataType.simpleString()}" for f in df.schema.fields]
                       + [f"{c} double" for c in outputs])

    def predict(batches: Iterator[Any]) -> Iterator[Any]:
        import mlflow
        import pandas as pd

        model, pending, rows = None, [], 0

        def scored() -> Any:
            chunk = pd.concat(pending, ignore_index=True)
            pending.clear()
            result = model.predict(chunk)
            for column in outputs:
                chunk[column] = result[column].to_numpy(dtype="float64")
            return chunk

        for batch in batches:
            if model is None:
                mlflow.set_tracking_uri(tracking_uri)
                mlflow.set_registry_uri(registry_uri)
                model = mlflow.pyfunc.load_model(model_location)
            pending.append(batch)
            rows += len(batch)
            if rows >= CHUNK_ROWS:
                yield scored()
                rows = 0
        if pending:
            yield scored()

    return df.mapInPandas(predict, schema=schema)


def champion(rt: Runtime, name: str) -> Any:
    from .registry import alias_version, mlflow_client

    rt.configure_mlflow()
    version = alias_version(mlflow_client(), name, "champion")
    if version is None:
        raise StageFailure(f"{name} has no @champion yet. Fix: validate, approve and promote a version "
                           f"(python -m {__package__} approve/promote), or run `run all` locally")
    return version


def score(rt: Runtime, ctx: RunContext) -> StageOutput:
    from .validation import model_input_gate

    project = load_project(ctx.root)
    contract = load_contracts(ctx.root)[project.source]
    name = rt.model_name(ctx.model_name or project.model_name)
    version = champion(rt, name)
    batch, periods = scoring_batch(rt, project, contract)
    gate = model_input_gate(batch, contract, "inference")
    keys, timestamp = batch_keys(contract)
    ctx.log(f"  score: {name} version {version.version} (@champion) on {timestamp} {', '.join(map(str, periods))}")
    scored = score_frame(batch, rt.model_location(name, str(version.version)), project.problem_type,
                         *rt.mlflow_uris())
    if project.problem_type == "classification":
        scored = scored.withColumn("prediction", F.col("prediction").cast("int"))
    scored = scored.select(
        "*", F.lit(None).cast(label_type(project.problem_type)).alias(LABEL), F.lit(name).alias("model_name"),
        F.lit(str(version.version)).alias("model_version"), F.lit("champion").alias("model_alias"),
        F.lit(datetime.now(UTC).replace(tzinfo=None)).cast("timestamp").alias("scored_at"),
        F.lit(ctx.run_id).alias("run_id"))
    before = rt.row_count(INFERENCE_TABLE) if rt.exists(INFERENCE_TABLE) else 0
    rt.merge(scored, INFERENCE_TABLE, [*keys, timestamp, "model_version"], insert_only=True)
    after = rt.row_count(INFERENCE_TABLE)
    return StageOutput([INFERENCE_TABLE], {
        "model": name, "version": str(version.version), "periods": [str(p) for p in periods],
        "inserted": after - before, "data_gate": gate})
