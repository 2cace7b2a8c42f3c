"""The features stage: the feature table of the training source, computed from its gold table."""

from __future__ import annotations

from ..context import RunContext, StageFailure, StageOutput
from ..data.features import feature_frame, feature_spec
from ..runtime import Runtime

# This module's stages and their positions in `run all` (see pipeline.py).
ORDER = {"features": 50}


def run(rt: Runtime, ctx: RunContext) -> StageOutput:
    project, contract = ctx.project, ctx.contract
    if not project.feature_store:
        return StageOutput(details={"skipped": "include_feature_store is no: training reads gold directly"})
    spec = feature_spec(contract, project.lookback_days)
    if not rt.exists(contract.gold_table):
        raise StageFailure(f"{rt.table(contract.gold_table)} does not exist yet. Fix: run the ingest stages first")
    gold_version = rt.version(contract.gold_table)
    features = feature_frame(rt.read(contract.gold_table), spec)
    rt.write_feature_table(features, spec.table, list(spec.keys), spec.timestamp,
                           description=f"Features of {contract.name} from {rt.table(contract.gold_table)} "
                                       f"version {gold_version}")
    return StageOutput([spec.table], {contract.name: {"feature_table": rt.table(spec.table),
                                                      "gold_version": gold_version}})
