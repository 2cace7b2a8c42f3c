"""Sail lane: ingestion at its edges.  One run at a time per project and target; a moved project
knows its files; any file name is safe; a file that cannot be read is recorded with its reason
while the others go on; rewritten files are reported; each batch meets the silver gate on its
own, and a failed batch can be skipped (audited) or replayed."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }} import names, pipeline
from {{ cookiecutter.package_name }}.runtime import KnownFiles, RunLock, RunLockHeld, open_runtime
from {{ cookiecutter.package_name }}.stages import ingest

pytestmark = pytest.mark.sail

PROJECT = Path(__file__).resolve().parents[1]
CONTRACT = """\
name: orders
format: csv
options: {header: 'true'}
path: raw/orders
primary_key: [order_id]
event_time: null
columns:
  order_id: {type: string, required: true}
  amount: {type: double, min: 0}
quality: {quarantine_threshold: 0.2}
gold: {table: orders, keys: [order_id], timestamp: _ingest_date, columns: {amount: amount}}
"""


def good_rows(first: int, count: int = 10) -> str:
    return "order_id,amount\n" + "".join(f"o{i},{i}.5\n" for i in range(first, first + count))


@pytest.fixture
def project(make_root, tmp_path) -> Path:
    root = make_root(tmp_path / "project")
    (root / "conf" / "contracts" / "orders.yml").write_text(CONTRACT)
    return root


def landing(rt) -> Path:
    folder = Path(rt.landing_path("raw/orders"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def ingest_run(rt, root: Path, *stages: str, retry: tuple[str, ...] = ()):
    return pipeline.run_stages(rt, list(stages) or ["ingest"], log=lambda _: None, root=root, retry_files=retry)


def details(summary, stage: str) -> dict:
    return next(s for s in summary.stages if s.name == stage).details.get("orders", {})


def silver_ids(rt) -> list[str]:
    return sorted(r.order_id for r in rt.read("silver_orders").collect())


# --- one writer at a time ---------------------------------------------------------------------


def test_a_second_run_on_the_same_project_and_target_is_refused_naming_the_first(tmp_path):
    first = RunLock(tmp_path / "locks" / "local.lock")
    first.acquire()
    try:
        with pytest.raises(RunLockHeld, match=rf"another run \(pid {os.getpid()}, started at .*\) holds "):
            RunLock(tmp_path / "locks" / "local.lock").acquire()
        env = {**os.environ, "PYTHONPATH": str(PROJECT / "src")}
        result = subprocess.run([sys.executable, "-m", "{{ cookiecutter.package_name }}", "run", "bronze", "--target", "local",
                                 "--local-dir", str(tmp_path)], cwd=PROJECT, env=env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 2 and f"another run (pid {os.getpid()}" in result.stderr, result.stderr[-2000:]
    finally:
        first.release()
    second = RunLock(tmp_path / "locks" / "local.lock")
    second.acquire()  # released: the next run goes ahead
    second.release()


def test_the_lock_is_per_target_and_released_when_the_runtime_closes(sail_spark, tmp_path):
    with open_runtime("local", "dev", "a", "local", local_dir=tmp_path, spark=sail_spark):
        with open_runtime("other", "dev", "b", "local", local_dir=tmp_path, spark=sail_spark):
            pass
        with pytest.raises(RunLockHeld):
            open_runtime("local", "dev", "a", "local", local_dir=tmp_path, spark=sail_spark)
    with open_runtime("local", "dev", "a", "local", local_dir=tmp_path, spark=sail_spark):
        pass


# --- file names and a moved project --------------------------------------------------------------


def test_hostile_file_names_are_ingested_once_even_when_a_crashed_attempt_is_retried(local_runtime, project):
    folder = landing(local_runtime)
    names_ = ["o'brien.csv", 'quote"d; DROP TABLE x.csv', "dollar $1 `tick` (1).csv"]
    for n, name in enumerate(names_):
        (folder / name).write_text(good_rows(n * 10))
    contract = pipeline.run_context(local_runtime, project, "r").contracts["orders"]
    for _ in range(2):  # a crash after bronze appended but before the log: the retry replaces, never adds
        looked = local_runtime.ingest_landing(contract, contract.bronze_table, 1, KnownFiles())
    assert sorted(f.path for f in looked) == sorted(f"raw/orders/{n}" for n in names_)
    assert local_runtime.row_count(contract.bronze_table) == 30
    summary = ingest_run(local_runtime, project)
    assert summary.ok, [s.error for s in summary.stages]
    assert local_runtime.row_count(contract.bronze_table) == 30 and len(silver_ids(local_runtime)) == 30


def test_a_moved_project_does_not_ingest_its_files_again(sail_spark, project, tmp_path):
    with open_runtime("local", "dev", "moved", "local", local_dir=project / ".local", spark=sail_spark) as rt:
        (landing(rt) / "part-1.csv").write_text(good_rows(0))
        assert details(ingest_run(rt, project, "bronze"), "bronze")["new_files"] == 1
        logged = {r.file for r in rt.read(names.INGEST_LOG_TABLE).collect()}
        assert logged == {"raw/orders/part-1.csv"}, "the log keeps paths relative to the landing volume"
    moved = tmp_path / "elsewhere" / "project"
    shutil.move(str(project), str(moved))
    with open_runtime("local", "dev", "moved", "local", local_dir=moved / ".local", spark=sail_spark) as rt:
        bronze = details(ingest_run(rt, moved, "bronze"), "bronze")
        assert bronze["new_files"] == 0, bronze


def test_a_log_written_with_absolute_paths_still_knows_its_files():
    contract = type("C", (), {"path": "raw/orders"})()
    assert ingest._key("/old/place/.local/volumes/dev/s/landing/raw/orders/part-1.csv", contract) == (
        "raw/orders/part-1.csv")
    assert ingest._key("raw/orders/part-1.csv", contract) == "raw/orders/part-1.csv"


# --- unreadable and changed files ----------------------------------------------------------------


def test_every_unreadable_file_is_recorded_with_its_reason_and_the_others_go_on(local_runtime, project):
    folder = landing(local_runtime)
    (folder / "good.csv").write_text(good_rows(0))
    (folder / "empty.csv").write_bytes(b"")
    (folder / "header_only.csv").write_text("order_id,amount\n")
    (folder / "binary.csv").write_bytes(bytes(range(256)) * 8)
    (folder / "latin1.csv").write_bytes("order_id,amount\ncafé,1\n".encode("latin-1"))
    (folder / "README.md").write_text("# orders\nExported nightly.\n")
    (folder / "sheet.xlsx").write_bytes(b"PK\x03\x04 not really a spreadsheet")
    summary = ingest_run(local_runtime, project)
    assert summary.ok, [s.error for s in summary.stages]
    bronze = details(summary, "bronze")
    assert bronze["new_files"] == 1 and bronze["raw_records"] == 10
    reasons = bronze["unreadable_files"]
    assert set(reasons) == {f"raw/orders/{n}" for n in ("empty.csv", "header_only.csv", "binary.csv",
                                                         "latin1.csv", "README.md", "sheet.xlsx")}
    assert reasons["raw/orders/empty.csv"] == "empty file (0 bytes)"
    assert reasons["raw/orders/header_only.csv"] == "no records"
    assert reasons["raw/orders/binary.csv"].startswith("binary content")
    assert "utf-8" in reasons["raw/orders/latin1.csv"].lower() or "utf8" in reasons["raw/orders/latin1.csv"].lower()
    assert reasons["raw/orders/README.md"] == "not a csv file (its name ends in .md)"
    errors = {r.file: r.reason for r in local_runtime.read(names.INGEST_ERRORS_TABLE).collect()}
    assert errors == reasons
    assert silver_ids(local_runtime) == [f"o{i}" for i in range(10)]

    again = ingest_run(local_runtime, project)
    assert details(again, "bronze") == {"new_files": 0, "raw_records": 0, "batch_id": None}, "not reported twice"

    # Fixed in place (new content): read again on its own. Unchanged but asked for: --retry-file.
    (folder / "latin1.csv").write_text("order_id,amount\ncafe,1\n", encoding="utf-8")
    fixed = details(ingest_run(local_runtime, project), "bronze")
    assert fixed["new_files"] == 1 and "unreadable_files" not in fixed
    retried = details(ingest_run(local_runtime, project, "bronze", retry=("raw/orders/header_only.csv",)),
                      "bronze")
    assert retried["unreadable_files"] == {"raw/orders/header_only.csv": "no records"}
    assert local_runtime.read(names.INGEST_ERRORS_TABLE).count() == len(reasons) + 1


def test_a_file_appended_to_after_ingestion_is_reported_and_reread_only_when_the_contract_allows(
        local_runtime, project):
    folder = landing(local_runtime)
    (folder / "orders.csv").write_text(good_rows(0))
    ingest_run(local_runtime, project)
    with (folder / "orders.csv").open("a") as handle:
        handle.write("o100,1.0\n")
    os.utime(folder / "orders.csv", (1e9, 1e9))
    reported = details(ingest_run(local_runtime, project), "bronze")
    assert reported["new_files"] == 0 and reported["changed_files"] == ["raw/orders/orders.csv"]
    assert "o100" not in silver_ids(local_runtime)

    path = project / "conf" / "contracts" / "orders.yml"
    raw = yaml.safe_load(path.read_text())
    raw["options"]["allowOverwrites"] = "true"
    path.write_text(yaml.safe_dump(raw))
    reread = details(ingest_run(local_runtime, project), "bronze")
    assert reread["new_files"] == 1 and reread["raw_records"] == 11
    assert silver_ids(local_runtime) == sorted([f"o{i}" for i in range(10)] + ["o100"]), "silver keeps one per key"
    assert details(ingest_run(local_runtime, project), "bronze")["new_files"] == 0


# --- the gate per batch, skip and replay --------------------------------------------------------


def test_a_failed_batch_blocks_until_skipped_and_replays_once_the_contract_is_fixed(local_runtime, project):
    folder = landing(local_runtime)
    (folder / "1.csv").write_text(good_rows(0))
    assert ingest_run(local_runtime, project).ok
    (folder / "2.csv").write_text("order_id,amount\n" + "".join(f"b{i},-1\n" for i in range(10)))  # all out of range
    blocked = ingest_run(local_runtime, project)
    assert not blocked.ok
    error = next(s.error for s in blocked.stages if s.name == "silver")
    assert "batches 2-2" in error and "batches skip 2 --source orders" in error and "batches replay 2" in error
    (folder / "3.csv").write_text(good_rows(20))
    assert not ingest_run(local_runtime, project).ok, "a later good batch does not dilute the bad one"
    ctx = pipeline.run_context(local_runtime, project, "decisions")
    contract = ctx.contracts["orders"]
    states = {b["batch"]: b["state"] for b in ingest.batch_overview(local_runtime, contract)}
    assert states == {1: "in silver", 2: "failed", 3: "pending"}

    ingest.skip_batch(local_runtime, ctx, contract, 2, "supplier export without prices", "tester")
    resumed = ingest_run(local_runtime, project)
    assert resumed.ok, [s.error for s in resumed.stages]
    assert details(resumed, "silver")["per_batch"]["2"] == "skipped: supplier export without prices"
    assert silver_ids(local_runtime) == sorted([f"o{i}" for i in range(10)] + [f"o{i}" for i in range(20, 30)])
    decisions = local_runtime.read(names.BATCH_DECISIONS_TABLE).collect()
    assert [(d.action, d.decided_by) for d in decisions] == [("skip", "tester")]

    path = project / "conf" / "contracts" / "orders.yml"
    path.write_text(CONTRACT.replace("amount: {type: double, min: 0}", "amount: {type: double, min: -5}"))
    ctx = pipeline.run_context(local_runtime, project, "replay")
    replayed = ingest.replay_batch(local_runtime, ctx, ctx.contracts["orders"], 2, "refunds are negative",
                                   "tester")
    assert replayed["gate"] == "passed" and replayed["silver_upserts"] == 10
    assert {f"b{i}" for i in range(10)} <= set(silver_ids(local_runtime))
    gold = {r.order_id for r in local_runtime.read("gold_orders").collect()}
    assert {f"b{i}" for i in range(10)} <= gold, "the replayed batch reaches gold"
    states = {b["batch"]: b["state"] for b in ingest.batch_overview(local_runtime, ctx.contracts["orders"])}
    assert states[2] == "in silver"
    with pytest.raises(Exception, match="already in silver"):
        ingest.skip_batch(local_runtime, ctx, ctx.contracts["orders"], 1, "late", "tester")


def test_the_batches_command_lists_and_refuses_a_skip_without_a_reason(cli, project):
    result = cli("batches", "skip", "2", "--target", "local", cwd=project)
    assert result.returncode == 2 and "needs a batch id and --reason" in result.stderr
    listed = cli("batches", "list", "--source", "orders", cwd=project)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert pd.read_json(io.StringIO(listed.stdout)).empty


# --- value sanity -------------------------------------------------------------------------------

SNAPSHOTS = """\
name: snapshots
format: csv
options: {header: 'true'}
path: raw/snapshots
primary_key: [id]
event_time: updated
columns:
  id: {type: string, required: true}
  month: {type: date, period: month}
  updated: {type: timestamp}
  value: {type: double}
  note: {type: string}
quality: {quarantine_threshold: 1.0, max_record_bytes: 2000}
gold: {table: snapshots, keys: [id], timestamp: month}
"""


def test_non_finite_future_misaligned_and_oversized_values_are_quarantined_by_name(local_runtime, project):
    (project / "conf" / "contracts" / "snapshots.yml").write_text(SNAPSHOTS)
    folder = Path(local_runtime.landing_path("raw/snapshots"))
    folder.mkdir(parents=True)
    rows = [("ok", "2024-03-01", "2024-03-05 10:00:00", "1.5", "fine"),
            ("inf", "2024-03-01", "2024-03-05 10:00:00", "Infinity", "x"),
            ("minus_inf", "2024-03-01", "2024-03-05 10:00:00", "-inf", "x"),
            ("nan", "2024-03-01", "2024-03-05 10:00:00", "NaN", "x"),
            ("future", "2024-03-01", "2031-01-01 00:00:00", "1", "x"),
            ("mid_month", "2024-03-15", "2024-03-05 10:00:00", "1", "x"),
            ("huge", "2024-03-01", "2024-03-05 10:00:00", "1", "y" * 5000)]
    pd.DataFrame(rows, columns=["id", "month", "updated", "value", "note"]).to_csv(folder / "s.csv", index=False)
    summary = ingest_run(local_runtime, project)
    assert summary.ok, [s.error for s in summary.stages]
    reasons = {r.id: list(r._failed_expectations) for r in local_runtime.read("quarantine_snapshots").collect()}
    assert reasons == {
        "inf": ["finite(value)"], "minus_inf": ["finite(value)"], "nan": ["finite(value)"],
        "future": ["not_future(updated, 1 days)"], "mid_month": ["period_start(month, month)"],
        "huge": ["record_size(<= 2000 bytes)"],
    }
    assert [r.id for r in local_runtime.read("silver_snapshots").collect()] == ["ok"]
