"""Medallion stages: bronze (raw, exactly once) -> silver (typed, validated, deduplicated,
quarantined) -> gold (business entity x time), for every contract in ``conf/contracts``.

Each stage processes only batches it has not processed yet (``ingest_state``), so a rerun
with no new files writes nothing.  Retried writes delete-then-append or MERGE, so an
interrupted run can be rerun without duplicates.  The silver gate fails closed: above the
contract's quarantine threshold nothing reaches silver and the stage fails with the rate,
the threshold and the top failing expectations.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..context import RunContext, StageFailure, StageOutput
from ..contract import Contract
from ..data.gold import aggregate_rows, gold_rows, missing_period_rows, with_groups
from ..data.quality import FAILED, STATUS, quarantine_rows, silver_rows, typed_with_failures
from ..data.transforms import latest_per_key
from ..data.validation import run_suite
from ..names import (
    BATCH,
    INGEST_LOG_TABLE,
    INGEST_METRICS_TABLE,
    INGEST_STATE_TABLE,
    LANDING_VOLUME,
    VALIDATION_RESULTS_TABLE,
)
from ..runtime import Runtime

# This module's stages and their positions in `run all` (see pipeline.py).
ORDER = {"bronze": 20, "silver": 30, "gold": 40}


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --- bookkeeping tables ------------------------------------------------------------------------


def stage_state(rt: Runtime, stage: str, source: str) -> int:
    """Last batch id a stage has fully processed for a source (0 when none)."""
    if not rt.exists(INGEST_STATE_TABLE):
        return 0
    row = (rt.read(INGEST_STATE_TABLE).where((F.col("stage") == stage) & (F.col("source") == source))
           .select("last_batch").first())
    return int(row["last_batch"]) if row else 0


def set_stage_state(rt: Runtime, stage: str, source: str, batch: int, run_id: str) -> None:
    frame = rt.spark.createDataFrame([(stage, source, int(batch), run_id, _now())],
                                     "stage string, source string, last_batch bigint, run_id string, "
                                     "updated_at timestamp")
    rt.merge(frame, INGEST_STATE_TABLE, ["stage", "source"])


def logged_files(rt: Runtime, source: str) -> tuple[set[str], int]:
    """Files already in bronze for a source, and the newest batch id."""
    if not rt.exists(INGEST_LOG_TABLE):
        return set(), 0
    rows = rt.read(INGEST_LOG_TABLE).where(F.col("source") == source).select("file", BATCH).collect()
    return {r["file"] for r in rows}, max((int(r[BATCH]) for r in rows), default=0)


# --- bronze ------------------------------------------------------------------------------------


def bronze(rt: Runtime, ctx: RunContext) -> StageOutput:
    """Append new landing files to ``bronze_<source>``, each exactly once, and log them."""
    out = StageOutput()
    for contract in ctx.contracts.values():
        seen, last_batch = logged_files(rt, contract.name)
        batch_id = last_batch + 1
        ctx.log(f"  bronze {contract.name}: looking for new files in {rt.landing_path(contract.path)}")
        landed = rt.ingest_landing(contract, contract.bronze_table, batch_id, seen)
        if landed:
            rows = [(contract.name, f.path, f.records, f.size, f.modified, batch_id, ctx.run_id, _now())
                    for f in landed]
            log = rt.spark.createDataFrame(
                rows, f"source string, file string, records bigint, size bigint, modified_at timestamp, "
                      f"{BATCH} bigint, run_id string, ingested_at timestamp")
            rt.write(log, INGEST_LOG_TABLE, mode="append" if rt.exists(INGEST_LOG_TABLE) else "overwrite")
            out.tables += [contract.bronze_table, INGEST_LOG_TABLE]
        out.details[contract.name] = {
            "new_files": len(landed),
            "raw_records": sum(f.records for f in landed),
            "batch_id": batch_id if landed else None,
        }
    return out


# --- silver ------------------------------------------------------------------------------------


def _count_by_status(checked: DataFrame) -> dict[str, int]:
    counts = {row[STATUS]: int(row["count"]) for row in checked.groupBy(STATUS).count().collect()}
    return {status: counts.get(status, 0) for status in ("valid", "quarantined", "malformed")}


def _top_failures(quarantined: DataFrame, limit: int = 5) -> list[tuple[str, int]]:
    exploded = quarantined.select(F.explode(FAILED).alias("expectation")).groupBy("expectation").count()
    return [(r["expectation"], int(r["count"])) for r in exploded.orderBy(F.desc("count"), "expectation")
            .limit(limit).collect()]


def _save_report(rt: Runtime, ctx: RunContext, contract: Contract, batches: tuple[int, int],
                 report_json: dict[str, Any], summary: list[dict[str, Any]]) -> str:
    folder = Path(rt.volume_path(LANDING_VOLUME, "reports", "validation", contract.name))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"batches_{batches[0]:05d}-{batches[1]:05d}.json"
    path.write_text(json.dumps({"run_id": ctx.run_id, "source": contract.name, "batches": batches,
                                "summary": summary, "great_expectations": report_json}, indent=2, default=str))
    rows = [(ctx.run_id, contract.name, batches[0], batches[1], r["name"], r["type"], r["column"], r["success"],
             r["unexpected_count"], r["element_count"], r["examples"], r["error"], _now()) for r in summary]
    frame = rt.spark.createDataFrame(
        rows, "run_id string, source string, batch_from bigint, batch_to bigint, expectation string, type string, "
              "column string, success boolean, unexpected_count bigint, element_count bigint, examples string, "
              "error string, validated_at timestamp")
    rt.replace_rows(frame, VALIDATION_RESULTS_TABLE,
                    f"source = {_sql_text(contract.name)} AND batch_from = {batches[0]} AND batch_to = {batches[1]}")
    return str(path)


def silver_batch(rt: Runtime, ctx: RunContext, contract: Contract, first: int, last: int) -> dict[str, Any]:
    """Type, validate, quarantine, deduplicate and MERGE bronze batches ``first..last``."""
    bronze_rows = rt.read(contract.bronze_table).where(F.col(BATCH).between(first, last))
    # Typed once into a staging table: the counts, the quarantine, Great Expectations and the
    # MERGE below all scan it instead of re-parsing bronze (serverless has no cache()).
    rt.write(typed_with_failures(bronze_rows, contract), contract.staging_table, mode="overwrite")
    checked = rt.read(contract.staging_table)
    raw = checked.count()
    counts = _count_by_status(checked)
    upserts_df = silver_rows(checked, contract)
    upserts = upserts_df.count()
    duplicates = counts["valid"] - upserts
    rejected = quarantine_rows(checked)
    in_batches = f"{BATCH} BETWEEN {first} AND {last}"
    rt.replace_rows(rejected, contract.quarantine_table, in_batches)

    ctx.log(f"  silver {contract.name}: validating {raw} records with Great Expectations")
    validated = checked.where(F.col(STATUS) != "malformed").select(*contract.column_names)
    report = run_suite(validated, contract.expectations(), f"{contract.name}_silver")
    summary = report.summary()
    report_path = _save_report(rt, ctx, contract, (first, last), report.raw, summary)

    rejected_rate = (counts["quarantined"] + counts["malformed"]) / raw if raw else 0.0
    table_level_failures = [r["name"] for r, e in zip(summary, contract.expectations(), strict=True)
                            if not e.row_level and not r["success"]]
    top = _top_failures(rejected)
    accounting = {
        "batches": [first, last],
        "raw_records": raw,
        "silver_upserts": upserts,
        "quarantined": counts["quarantined"],
        "duplicates_removed": duplicates,
        "malformed": counts["malformed"],
        "accounting_closes": raw == upserts + counts["quarantined"] + duplicates + counts["malformed"],
        "quarantine_rate": round(rejected_rate, 5),
        "threshold": contract.quarantine_threshold,
        "top_failures": [f"{name}: {count}" for name, count in top],
        "report": report_path,
    }
    passed = (rejected_rate <= contract.quarantine_threshold and not table_level_failures
              and accounting["accounting_closes"])
    accounting["gate"] = "passed" if passed else "failed"
    metrics = rt.spark.createDataFrame(
        [(ctx.run_id, contract.name, first, last, raw, upserts, counts["quarantined"], duplicates,
          counts["malformed"], rejected_rate, contract.quarantine_threshold, accounting["gate"],
          json.dumps(accounting["top_failures"]), _now())],
        "run_id string, source string, batch_from bigint, batch_to bigint, raw_records bigint, silver_upserts bigint, "
        "quarantined bigint, duplicates_removed bigint, malformed bigint, quarantine_rate double, threshold double, "
        "gate string, top_failures string, measured_at timestamp")
    rt.replace_rows(metrics, INGEST_METRICS_TABLE,
                    f"source = {_sql_text(contract.name)} AND batch_from = {first} AND batch_to = {last}")
    if not passed:
        reasons = []
        if rejected_rate > contract.quarantine_threshold:
            listed = ", ".join(f"{name} ({count})" for name, count in top)
            reasons.append(f"quarantine rate {rejected_rate:.2%} exceeds the threshold "
                           f"{contract.quarantine_threshold:.2%}; top failing expectations: {listed}")
        if table_level_failures:
            reasons.append(f"batch expectations failed: {', '.join(table_level_failures)}")
        if not accounting["accounting_closes"]:
            reasons.append("the record accounting does not close")
        raise StageFailure(f"silver gate for {contract.name} (batches {first}-{last}): " + "; ".join(reasons)
                           + f". Nothing was written to silver; see {report_path} and {contract.quarantine_table}",
                           {contract.name: accounting})
    newer = f"s.`{contract.event_time}` >= t.`{contract.event_time}`" if contract.event_time else None
    rt.merge(upserts_df, contract.silver_table, list(contract.primary_key), update_when=newer)
    return accounting


def silver(rt: Runtime, ctx: RunContext) -> StageOutput:
    out = StageOutput()
    failures = []
    for contract in ctx.contracts.values():
        done = stage_state(rt, "silver", contract.name)
        _, newest = logged_files(rt, contract.name)
        if newest <= done:
            out.details[contract.name] = {"new_batches": 0}
            continue
        try:
            out.details[contract.name] = silver_batch(rt, ctx, contract, done + 1, newest)
        except StageFailure as exc:
            failures.append(exc)
            out.details.update(exc.details)
            continue
        set_stage_state(rt, "silver", contract.name, newest, ctx.run_id)
        out.tables += [contract.silver_table, contract.quarantine_table]
    if failures:
        raise StageFailure(" | ".join(str(f) for f in failures), out.details)
    return out


# --- gold --------------------------------------------------------------------------------------


def changed_gold_rows(rt: Runtime, contract: Contract, done: int) -> DataFrame:
    """The gold rows the silver batches after ``done`` change.  Row-level: the latest version of
    each changed key.  Aggregating: every group those batches touch, recomputed from all of silver."""
    silver = rt.read(contract.silver_table)
    if contract.gold.aggregated:
        grouped = with_groups(silver, contract.gold)
        touched = grouped.where(F.col(BATCH) > done).select(*contract.gold.keys).distinct()
        return aggregate_rows(grouped.join(touched, on=list(contract.gold.keys), how="left_semi"), contract)
    changed = silver.where(F.col(BATCH) > done)
    keys = list(dict.fromkeys([*contract.gold.keys, contract.gold.timestamp]))
    return latest_per_key(gold_rows(changed, contract), keys, [BATCH])


def gold(rt: Runtime, ctx: RunContext) -> StageOutput:
    """MERGE the gold rows of every silver row changed since the last gold run, then (when the
    contract asks) fill the missing periods of each entity."""
    out = StageOutput()
    for contract in ctx.contracts.values():
        done = stage_state(rt, "gold", contract.name)
        ready = stage_state(rt, "silver", contract.name)
        if ready <= done:
            out.details[contract.name] = {"new_batches": 0}
            continue
        keys = list(dict.fromkeys([*contract.gold.keys, contract.gold.timestamp]))
        rt.merge(changed_gold_rows(rt, contract, done), contract.gold_table, keys)
        details: dict[str, Any] = {"batches": [done + 1, ready]}
        if contract.gold.fill_every:
            filled = missing_period_rows(rt.read(contract.gold_table), contract, ready)
            details["filled_periods"] = filled.count()
            if details["filled_periods"]:
                rt.merge(filled, contract.gold_table, keys)
        set_stage_state(rt, "gold", contract.name, ready, ctx.run_id)
        out.tables.append(contract.gold_table)
        out.details[contract.name] = {**details, "gold_rows": rt.row_count(contract.gold_table)}
    return out
