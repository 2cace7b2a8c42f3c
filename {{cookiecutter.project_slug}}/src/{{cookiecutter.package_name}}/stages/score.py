"""The score stage: batch inference with the ``@champion`` model.

The rows to score come by the training path (``data/inputs.py``) for the latest
``inference.batch_periods`` periods of gold; the data gate checks them; ``score_frame`` loads the
model once per partition; an insert-only MERGE into the inference table keyed by entity, period
and model version makes a rerun of a batch insert nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import functions as F

from ..context import RunContext, StageOutput
from ..data.inputs import scoring_inputs
from ..data.validation import model_input_gate
from ..ml.registry import champion
from ..ml.scoring import label_type, score_frame
from ..names import INFERENCE_TABLE, LABEL
from ..runtime import Runtime

# This module's stages and their positions in `run all` (see pipeline.py).
ORDER = {"score": 100}


def run(rt: Runtime, ctx: RunContext) -> StageOutput:
    project, contract, name = ctx.project, ctx.contract, ctx.model_name
    version = champion(rt, name)
    batch, periods = scoring_inputs(rt, project, contract)
    gate = model_input_gate(batch, contract, "inference")
    keys, timestamp = contract.gold.entity_keys, contract.gold.timestamp
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
