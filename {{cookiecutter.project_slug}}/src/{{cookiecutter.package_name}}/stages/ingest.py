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

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ..context import RunContext, StageFailure, StageOutput
from ..contract import Contract
from ..data.gold import aggregate_rows, gold_rows, missing_period_rows, with_groups
from ..data.quality import FAILED, STATUS, quarantine_rows, silver_rows, typed_with_failures
from ..data.transforms import latest_per_key
from ..data.validation import run_suite
from ..names import (
    BATCH,
    BATCH_DECISIONS_TABLE,
    INGEST_ERRORS_TABLE,
    INGEST_LOG_TABLE,
    INGEST_METRICS_TABLE,
    INGEST_STATE_TABLE,
    LANDING_VOLUME,
    VALIDATION_RESULTS_KEY,
    VALIDATION_RESULTS_SCHEMA,
    VALIDATION_RESULTS_TABLE,
)
from ..runtime import KnownFiles, Runtime

# This module's stages and their positions in `run all` (see pipeline.py).
ORDER = {"bronze": 20, "silver": 30, "gold": 40}


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _batch_range(rt: Runtime, contract: Contract, first: int, last: int) -> DataFrame:
    """The key of a source's batch-range rows, as data for ``replace_matching`` (not SQL text)."""
    return rt.spark.createDataFrame([(contract.name, int(first), int(last))], VALIDATION_RESULTS_KEY)


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


def _key(file: str, contract: Contract) -> str:
    """A logged file's landing key.  Logs written before keys were relative hold absolute paths:
    the part from the contract's folder on is the key, so a moved project still knows them."""
    marker = "/" + contract.path.strip("/") + "/"
    at = file.rfind(marker) if file.startswith("/") and not contract.path.startswith("/") else -1
    return file[at + 1:] if at >= 0 else file


def _latest_by_file(rt: Runtime, table: str, contract: Contract) -> dict[str, tuple[int | None, datetime | None]]:
    if not rt.exists(table):
        return {}
    rows = (rt.read(table).where(F.col("source") == contract.name)
            .select("file", "size", "modified_at", BATCH).orderBy(BATCH).collect())
    return {_key(r["file"], contract): (r["size"], r["modified_at"]) for r in rows}


def known_files(rt: Runtime, contract: Contract, retry: set[str]) -> tuple[KnownFiles, int]:
    """What bronze knows of a source's files (ingested, unreadable), and the newest batch id."""
    last = 0
    if rt.exists(INGEST_LOG_TABLE):
        row = rt.read(INGEST_LOG_TABLE).where(F.col("source") == contract.name).agg(F.max(BATCH)).first()
        last = int(row[0] or 0)
    return KnownFiles(_latest_by_file(rt, INGEST_LOG_TABLE, contract),
                      _latest_by_file(rt, INGEST_ERRORS_TABLE, contract), retry), last


# --- bronze ------------------------------------------------------------------------------------

FILE_ROW = (f"source string, file string, records bigint, size bigint, modified_at timestamp, {BATCH} bigint, "
            "run_id string, ingested_at timestamp")
ERROR_ROW = (f"source string, file string, reason string, size bigint, modified_at timestamp, {BATCH} bigint, "
             "run_id string, found_at timestamp")


def bronze(rt: Runtime, ctx: RunContext) -> StageOutput:
    """Append new landing files to ``bronze_<source>``, each exactly once, and log them.  A file
    that cannot be read goes to ``ingest_errors`` with its reason while the others go on; a file
    rewritten after ingestion is reported (and re-read only with ``allowOverwrites``)."""
    out = StageOutput()
    for contract in ctx.contracts.values():
        known, last_batch = known_files(rt, contract, set(ctx.retry_files))
        batch_id = last_batch + 1
        ctx.log(f"  bronze {contract.name}: looking for new files in {rt.landing_path(contract.path)}")
        looked = rt.ingest_landing(contract, contract.bronze_table, batch_id, known)
        landed = [f for f in looked if f.status == "ingested"]
        unreadable = [f for f in looked if f.status == "unreadable"]
        changed = [f for f in looked if f.status == "changed"]
        if landed:
            rows = [(contract.name, f.path, f.records, f.size, f.modified, batch_id, ctx.run_id, _now())
                    for f in landed]
            rt.write(rt.spark.createDataFrame(rows, FILE_ROW), INGEST_LOG_TABLE,
                     mode="append" if rt.exists(INGEST_LOG_TABLE) else "overwrite")
            out.tables += [contract.bronze_table, INGEST_LOG_TABLE]
        if unreadable:
            rows = [(contract.name, f.path, f.reason, f.size, f.modified, batch_id, ctx.run_id, _now())
                    for f in unreadable]
            rt.write(rt.spark.createDataFrame(rows, ERROR_ROW), INGEST_ERRORS_TABLE,
                     mode="append" if rt.exists(INGEST_ERRORS_TABLE) else "overwrite")
            out.tables.append(INGEST_ERRORS_TABLE)
            for f in unreadable:
                ctx.log(f"  bronze {contract.name}: {f.path} left out: {f.reason}. Fix: correct the file and land "
                        f"it under a new name, or rerun with --retry-file {f.path}")
        for f in changed:
            ctx.log(f"  bronze {contract.name}: {f.path} changed after it was ingested: {f.reason}")
        out.details[contract.name] = {
            "new_files": len(landed),
            "raw_records": sum(f.records for f in landed),
            "batch_id": batch_id if landed else None,
            **({"unreadable_files": {f.path: f.reason for f in unreadable}} if unreadable else {}),
            **({"changed_files": [f.path for f in changed]} if changed else {}),
        }
    return out


# --- silver ------------------------------------------------------------------------------------


def _batch_counts(checked: DataFrame, contract: Contract) -> dict[str, int]:
    """Rows per status, and ``upserts``: the distinct primary keys of the valid rows, which is how
    many rows silver receives (one per key), counted without deduplicating a first time.  Two
    small queries: a distinct count next to other aggregates is ~80x slower on the local engine."""
    by_status = {row[STATUS]: int(row["count"]) for row in checked.groupBy(STATUS).count().collect()}
    counts = {status: by_status.get(status, 0) for status in ("valid", "quarantined", "malformed")}
    valid = checked.where(F.col(STATUS) == "valid")
    counts["upserts"] = int(valid.agg(F.count_distinct(F.struct(*[F.col(f"`{k}`") for k in contract.primary_key])))
                            .first()[0])
    return counts


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
    frame = rt.spark.createDataFrame(rows, VALIDATION_RESULTS_SCHEMA)
    rt.replace_matching(frame, VALIDATION_RESULTS_TABLE, _batch_range(rt, contract, *batches))
    return str(path)


def silver_batch(rt: Runtime, ctx: RunContext, contract: Contract, first: int, last: int) -> dict[str, Any]:
    """Type, validate, quarantine, deduplicate and MERGE bronze batches ``first..last``."""
    bronze_rows = rt.read(contract.bronze_table).where(F.col(BATCH).between(first, last))
    # Typed once into a staging table: the counts, the quarantine, Great Expectations and the
    # MERGE below all scan it instead of re-parsing bronze (serverless has no cache()).
    rt.write(typed_with_failures(bronze_rows, contract), contract.staging_table, mode="overwrite")
    checked = rt.read(contract.staging_table)
    raw = checked.count()  # from the Delta log's statistics, independent of the counts below
    counts = _batch_counts(checked, contract)
    upserts_df = silver_rows(checked, contract)
    upserts = counts["upserts"]
    duplicates = counts["valid"] - upserts
    rejected = quarantine_rows(checked)
    batch_ids = rt.spark.range(int(first), int(last) + 1).withColumnRenamed("id", BATCH)
    rt.replace_matching(rejected, contract.quarantine_table, batch_ids)

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
    rt.replace_matching(metrics, INGEST_METRICS_TABLE, _batch_range(rt, contract, first, last))
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


def newest_batch(rt: Runtime, contract: Contract) -> int:
    if not rt.exists(INGEST_LOG_TABLE):
        return 0
    row = rt.read(INGEST_LOG_TABLE).where(F.col("source") == contract.name).agg(F.max(BATCH)).first()
    return int(row[0] or 0)


def batch_decisions(rt: Runtime, contract: Contract) -> dict[int, dict[str, Any]]:
    """The latest skip or replay decision per batch of a source."""
    if not rt.exists(BATCH_DECISIONS_TABLE):
        return {}
    rows = rt.read(BATCH_DECISIONS_TABLE).where(F.col("source") == contract.name).orderBy("decided_at").collect()
    return {int(r[BATCH]): r.asDict() for r in rows}


ADDED = ("raw_records", "silver_upserts", "quarantined", "duplicates_removed", "malformed")


def _combined(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary for the batches a run processed: counts added up, the last batch's report."""
    if len(results) == 1:
        return results[0]
    checked = [r for r in results if "skipped" not in r]
    out: dict[str, Any] = {"batches": [results[0]["batches"][0], results[-1]["batches"][1]]}
    out.update({k: sum(r[k] for r in checked) for k in ADDED})
    out["accounting_closes"] = all(r["accounting_closes"] for r in checked)
    out["gate"] = "passed" if all(r["gate"] == "passed" for r in checked) else "failed"
    out["per_batch"] = {str(r["batches"][0]): r.get("skipped") or f"{r['gate']} ({r['quarantine_rate']:.2%} "
                        "quarantined)" for r in results}
    if checked:
        out["report"] = checked[-1]["report"]
    return out


def silver(rt: Runtime, ctx: RunContext) -> StageOutput:
    """Each pending bronze batch through the silver gate on its own, in order.  A failed batch
    stops its source (nothing of it reaches silver) until it is fixed and rerun, replayed, or
    skipped with a reason (``batches skip``); batches before it stay committed."""
    out = StageOutput()
    failures = []
    for contract in ctx.contracts.values():
        done = stage_state(rt, "silver", contract.name)
        newest = newest_batch(rt, contract)
        if newest <= done:
            out.details[contract.name] = {"new_batches": 0}
            continue
        decisions = batch_decisions(rt, contract)
        results: list[dict[str, Any]] = []
        for batch in range(done + 1, newest + 1):
            decision = decisions.get(batch)
            try:
                if decision and decision["action"] == "skip":
                    results.append({"batches": [batch, batch], "skipped": f"skipped: {decision['reason']}"})
                else:
                    results.append(silver_batch(rt, ctx, contract, batch, batch))
            except StageFailure as exc:
                failures.append(StageFailure(f"{exc} Fix: correct the contract or the data and rerun; replay "
                                             f"the batch with `batches replay {batch} --source {contract.name}`, "
                                             f"or skip it with `batches skip {batch} --source {contract.name} "
                                             "--reason ...`", exc.details))
                out.details.update(exc.details)
                break
            set_stage_state(rt, "silver", contract.name, batch, ctx.run_id)
        else:
            out.details[contract.name] = _combined(results)
        if results:
            out.tables += [contract.silver_table, contract.quarantine_table]
    if failures:
        raise StageFailure(" | ".join(str(f) for f in failures), out.details)
    return out


def record_decision(rt: Runtime, contract: Contract, batch: int, action: str, reason: str, by: str) -> None:
    row = rt.spark.createDataFrame([(contract.name, int(batch), action, reason, by, _now())],
                                   f"source string, {BATCH} bigint, action string, reason string, "
                                   "decided_by string, decided_at timestamp")
    rt.write(row, BATCH_DECISIONS_TABLE, mode="append" if rt.exists(BATCH_DECISIONS_TABLE) else "overwrite")


def batch_overview(rt: Runtime, contract: Contract) -> list[dict[str, Any]]:
    """Every bronze batch of a source: its files and records, whether silver took it, its gate
    result and any skip or replay decision."""
    if not rt.exists(INGEST_LOG_TABLE):
        return []
    files = (rt.read(INGEST_LOG_TABLE).where(F.col("source") == contract.name).groupBy(BATCH)
             .agg(F.count("*").alias("files"), F.sum("records").alias("records")).orderBy(BATCH).collect())
    gates: dict[int, dict[str, Any]] = {}
    if rt.exists(INGEST_METRICS_TABLE):
        for r in (rt.read(INGEST_METRICS_TABLE).where(F.col("source") == contract.name)
                  .orderBy("measured_at").collect()):
            gates[int(r["batch_to"])] = {"gate": r["gate"], "quarantine_rate": r["quarantine_rate"]}
    done = stage_state(rt, "silver", contract.name)
    decisions = batch_decisions(rt, contract)
    overview = []
    for r in files:
        batch = int(r[BATCH])
        decision = decisions.get(batch)
        state = "skipped" if decision and decision["action"] == "skip" else (
            "in silver" if batch <= done and gates.get(batch, {}).get("gate") == "passed" else
            "failed" if gates.get(batch, {}).get("gate") == "failed" else
            "in silver" if batch <= done else "pending")
        overview.append({"batch": batch, "files": int(r["files"]), "records": int(r["records"] or 0), "state": state,
                         **gates.get(batch, {}),
                         **({"decision": f"{decision['action']} by {decision['decided_by']}: {decision['reason']}"}
                            if decision else {})})
    return overview


def _known_batch(rt: Runtime, contract: Contract, batch: int) -> None:
    if batch not in {b["batch"] for b in batch_overview(rt, contract)}:
        raise StageFailure(f"{contract.name} has no bronze batch {batch}. Fix: pick one from `batches list "
                           f"--source {contract.name}`")


def skip_batch(rt: Runtime, ctx: RunContext, contract: Contract, batch: int, reason: str, by: str) -> dict[str, Any]:
    """Let silver go past a batch without taking its rows (audited); ``replay`` brings it back."""
    _known_batch(rt, contract, batch)
    if batch <= stage_state(rt, "silver", contract.name) and batch not in batch_decisions(rt, contract):
        raise StageFailure(f"batch {batch} of {contract.name} is already in silver; skipping it would not take "
                           "its rows out. Fix: correct the rows at the source and land them again")
    record_decision(rt, contract, batch, "skip", reason, by)
    return {"source": contract.name, "batch": batch, "action": "skip", "reason": reason, "by": by}


def replay_batch(rt: Runtime, ctx: RunContext, contract: Contract, batch: int, reason: str,
                 by: str) -> dict[str, Any]:
    """Run one batch through the silver gate again (e.g. after a contract fix, or one that was
    skipped) and MERGE its gold rows; later batches already in silver stay as they are."""
    _known_batch(rt, contract, batch)
    record_decision(rt, contract, batch, "replay", reason, by)
    accounting = silver_batch(rt, ctx, contract, batch, batch)
    done = stage_state(rt, "silver", contract.name)
    if batch == done + 1:
        set_stage_state(rt, "silver", contract.name, batch, ctx.run_id)
    elif batch <= done and rt.exists(contract.gold_table):
        keys = list(dict.fromkeys([*contract.gold.keys, contract.gold.timestamp]))
        rt.merge(changed_gold_rows(rt, contract, F.col(BATCH) == batch), contract.gold_table, keys)
    return {"source": contract.name, "batch": batch, "action": "replay", "by": by, **accounting}


# --- gold --------------------------------------------------------------------------------------


def changed_gold_rows(rt: Runtime, contract: Contract, changed: Column) -> DataFrame:
    """The gold rows the ``changed`` silver rows change.  Row-level: the latest version of each
    changed key.  Aggregating: every group they touch, recomputed from all of silver."""
    silver = rt.read(contract.silver_table)
    if contract.gold.aggregated:
        grouped = with_groups(silver, contract.gold)
        touched = grouped.where(changed).select(*contract.gold.keys).distinct()
        return aggregate_rows(grouped.join(touched, on=list(contract.gold.keys), how="left_semi"), contract)
    keys = list(dict.fromkeys([*contract.gold.keys, contract.gold.timestamp]))
    return latest_per_key(gold_rows(silver.where(changed), contract), keys, [BATCH])


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
        rt.merge(changed_gold_rows(rt, contract, F.col(BATCH) > done), contract.gold_table, keys)
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
