"""Model inputs, read through the runtime by one feature path for training and scoring: the
point-in-time lookup on the feature table when the feature store is on, gold otherwise.

Training pins the Delta versions it reads and reports them for lineage; scoring reads the
latest periods of gold as they are now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..config import ProjectConfig
from ..context import StageFailure
from ..contract import Contract
from ..names import LABEL
from ..runtime import Runtime
from .features import feature_frame, feature_spec


class MissingInputError(StageFailure):
    """A table the inputs are read from does not exist yet; the message names the stage to run."""


@dataclass
class ModelInputs:
    """Rows for the model (keys, period, features and the label), and where they came from."""

    frame: DataFrame
    keys: list[str]
    timestamp: str
    # Each input table: {"table": UC name, "version": Delta version, "short": short name}.
    sources: list[dict[str, Any]] = field(default_factory=list)


def _require(rt: Runtime, table: str, stage: str) -> None:
    if not rt.exists(table):
        raise MissingInputError(f"{rt.table(table)} does not exist. Fix: run the {stage} first")


def _source(rt: Runtime, table: str) -> dict[str, Any]:
    return {"table": rt.table(table), "version": rt.version(table), "short": table}


def model_inputs(rt: Runtime, project: ProjectConfig, contract: Contract, spine: DataFrame) -> DataFrame:
    """Feature rows for ``spine`` (entity keys, period, label): the feature table's point-in-time
    lookup, or the gold row of the same entity and period; the label is kept."""
    if project.feature_store:
        spec = feature_spec(contract, project.lookback_days)
        _require(rt, spec.table, "features stage")
        return rt.training_set(spine, spec.table, list(spec.keys), spec.timestamp, spec.lookback)
    return gold_features(spine, rt.read(contract.gold_table), project, contract)


def gold_features(spine: DataFrame, gold: DataFrame, project: ProjectConfig, contract: Contract) -> DataFrame:
    """Without a feature table: the features of gold rows computed on the fly (the same
    ``feature_frame`` the features stage writes), joined to ``spine`` by entity and period."""
    features = feature_frame(gold, feature_spec(contract, project.lookback_days))
    return spine.join(features, on=[*contract.gold.entity_keys, contract.gold.timestamp], how="inner")


def training_inputs(rt: Runtime, project: ProjectConfig, contract: Contract) -> ModelInputs:
    """The training frame at the current Delta versions of its input tables (recorded in ``sources``)."""
    _require(rt, contract.gold_table, "ingest stages")
    keys, timestamp = contract.gold.entity_keys, contract.gold.timestamp
    gold = _source(rt, contract.gold_table)
    labels = rt.read(contract.gold_table, version=gold["version"])
    if not project.feature_store:
        frame = gold_features(labels.select(*keys, timestamp, LABEL), labels, project, contract)
        return ModelInputs(frame, keys, timestamp, [gold])
    frame = model_inputs(rt, project, contract, labels.select(*keys, timestamp, LABEL))
    return ModelInputs(frame, keys, timestamp, [gold, _source(rt, feature_spec(contract, project.lookback_days).table)])


def latest_periods(gold: DataFrame, timestamp: str, periods: int) -> list[Any]:
    rows = gold.select(timestamp).distinct().orderBy(F.col(timestamp).desc()).limit(periods).collect()
    return sorted(r[0] for r in rows)


def scoring_inputs(rt: Runtime, project: ProjectConfig, contract: Contract) -> tuple[DataFrame, list[Any]]:
    """Model inputs (without the label) of the latest ``inference.batch_periods`` periods of gold,
    and those periods."""
    _require(rt, contract.gold_table, "ingest stages")
    keys, timestamp = contract.gold.entity_keys, contract.gold.timestamp
    gold = rt.read(contract.gold_table)
    periods = latest_periods(gold, timestamp, int(project.inference.get("batch_periods", 1)))
    if not periods:
        raise StageFailure(f"{rt.table(contract.gold_table)} is empty; there is nothing to score")
    spine = gold.where(F.col(timestamp).isin(periods)).select(*keys, timestamp, LABEL)
    return model_inputs(rt, project, contract, spine).drop(LABEL), periods
