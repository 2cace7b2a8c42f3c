"""The score stage: batch inference with the ``@champion`` model, and shadow scoring with ``@challenger``.

The rows to score come by the training path (``data/inputs.py``) for the latest
``inference.batch_periods`` periods of gold; the data gate checks them; ``score_frame`` loads the
model once per partition; an insert-only MERGE into the inference table keyed by entity, period
model version and alias makes a rerun of a batch insert nothing.  With ``inference.score_challenger`` a
``@challenger`` that is not the champion scores the same rows too (``model_alias`` = challenger):
nothing downstream uses its answers as predictions; ``monitor`` compares the two once labels arrive.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..context import RunContext, StageOutput
from ..data.inputs import scoring_inputs
from ..data.validation import model_input_gate
from ..ml.registry import champion, mlflow_client, served_versions
from ..ml.scoring import label_type, score_frame
from ..names import INFERENCE_TABLE, LABEL
from ..runtime import Runtime

# This module's stages and their positions in `run all` (see pipeline.py).
ORDER = {"score": 100}


def rows_per_alias(rt: Runtime) -> dict[str, int]:
    """Rows of the inference table per ``model_alias`` (none before the first batch)."""
    if not rt.exists(INFERENCE_TABLE):
        return {}
    return {row[0]: int(row[1]) for row in rt.read(INFERENCE_TABLE).groupBy("model_alias").count().collect()}


def run(rt: Runtime, ctx: RunContext) -> StageOutput:
    project, contract, name = ctx.project, ctx.contract, ctx.model_name
    version = champion(rt, name)
    batch, periods = scoring_inputs(rt, project, contract)
    gate = model_input_gate(batch, contract, "inference")
    keys, timestamp = contract.gold.entity_keys, contract.gold.timestamp
    ctx.log(f"  score: {name} version {version.version} (@champion) on {timestamp} {', '.join(map(str, periods))}")
    scored_at = datetime.now(UTC).replace(tzinfo=None)
    _, challenger = served_versions(mlflow_client(), name) if project.inference["score_challenger"] else (None, None)
    versions = {"champion": str(version.version), **({"challenger": challenger} if challenger else {})}
    if challenger:
        ctx.log(f"  score: shadow scoring with version {challenger} (@challenger) on the same rows")

    def scored_by(alias: str, model_version: str) -> DataFrame:
        scored = score_frame(batch, rt.model_location(name, model_version), project.problem_type, *rt.mlflow_uris())
        if project.problem_type == "classification":
            scored = scored.withColumn("prediction", F.col("prediction").cast("int"))
        return scored.select(
            "*", F.lit(None).cast(label_type(project.problem_type)).alias(LABEL), F.lit(name).alias("model_name"),
            F.lit(model_version).alias("model_version"), F.lit(alias).alias("model_alias"),
            F.lit(scored_at).cast("timestamp").alias("scored_at"), F.lit(ctx.run_id).alias("run_id"))

    # Both versions in one insert-only MERGE (one commit); what it inserted, per alias, from two counts.
    before = rows_per_alias(rt)
    rt.merge(functools.reduce(DataFrame.unionByName, [scored_by(a, v) for a, v in versions.items()]),
             INFERENCE_TABLE, [*keys, timestamp, "model_version", "model_alias"], insert_only=True)
    after = rows_per_alias(rt)
    inserted = {alias: after.get(alias, 0) - before.get(alias, 0) for alias in versions}
    details: dict[str, object] = {"model": name, "version": str(version.version),
                                  "periods": [str(p) for p in periods], "inserted": inserted["champion"],
                                  "data_gate": gate}
    if challenger:
        details["shadow_version"], details["shadow_inserted"] = challenger, inserted["challenger"]
    return StageOutput([INFERENCE_TABLE], details)
