"""The score stage: batch inference with the ``@champion`` model, and shadow scoring with ``@challenger``.

The rows to score come by the training path (``data/inputs.py``) for the latest
``inference.batch_periods`` periods of gold; the data gate checks them; ``score_frame`` loads the
model once per partition; an insert-only MERGE into the inference table keyed by entity, period
model version and alias makes a rerun of a batch insert nothing.  With ``inference.score_challenger`` a
``@challenger`` that is not the champion scores the same rows too (``model_alias`` = challenger):
nothing downstream uses its answers as predictions; ``monitor`` compares the two once labels arrive.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import functions as F

from ..context import RunContext, StageOutput
from ..data.inputs import scoring_inputs
from ..data.validation import model_input_gate
from ..ml.registry import alias_version, champion, mlflow_client
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
    scored_at = datetime.now(UTC).replace(tzinfo=None)

    def scored_by(alias: str, model_version: str) -> int:
        """Score the batch with one version into the inference table; the number of rows inserted."""
        scored = score_frame(batch, rt.model_location(name, model_version), project.problem_type, *rt.mlflow_uris())
        if project.problem_type == "classification":
            scored = scored.withColumn("prediction", F.col("prediction").cast("int"))
        scored = scored.select(
            "*", F.lit(None).cast(label_type(project.problem_type)).alias(LABEL), F.lit(name).alias("model_name"),
            F.lit(model_version).alias("model_version"), F.lit(alias).alias("model_alias"),
            F.lit(scored_at).cast("timestamp").alias("scored_at"), F.lit(ctx.run_id).alias("run_id"))
        before = rt.row_count(INFERENCE_TABLE) if rt.exists(INFERENCE_TABLE) else 0
        rt.merge(scored, INFERENCE_TABLE, [*keys, timestamp, "model_version", "model_alias"], insert_only=True)
        return rt.row_count(INFERENCE_TABLE) - before

    details: dict[str, object] = {"model": name, "version": str(version.version),
                                  "periods": [str(p) for p in periods],
                                  "inserted": scored_by("champion", str(version.version)), "data_gate": gate}
    challenger = alias_version(mlflow_client(), name, "challenger") if project.inference["score_challenger"] else None
    if challenger is not None and str(challenger.version) != str(version.version):
        ctx.log(f"  score: shadow scoring with version {challenger.version} (@challenger) on the same rows")
        details["shadow_version"] = str(challenger.version)
        details["shadow_inserted"] = scored_by("challenger", str(challenger.version))
    return StageOutput([INFERENCE_TABLE], details)
