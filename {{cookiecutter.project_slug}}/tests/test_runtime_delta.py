"""Sail lane: a real Delta round trip through the runtime adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.sail


def _frame(spark, rows):
    return spark.createDataFrame(rows, "id long, value string")


def test_three_level_names_map_under_the_local_dir(local_runtime):
    rt = local_runtime
    assert rt.table("events") == "dev.unit_tests.events"
    assert rt.path("events") == rt.local_dir / "warehouse" / "dev" / "unit_tests" / "events"
    assert rt.volume_path("landing", "raw") == str(rt.local_dir / "volumes" / "dev" / "unit_tests" / "landing" / "raw")
    with pytest.raises(ValueError, match="not a valid Unity Catalog name"):
        rt.table("Bad-Name")


def test_write_merge_and_time_travel(local_runtime):
    rt = local_runtime
    assert rt.version("events") is None and not rt.exists("events")
    rt.write(_frame(rt.spark, [(1, "a"), (2, "b")]), "events")
    assert rt.version("events") == 0

    rt.merge(_frame(rt.spark, [(2, "B"), (3, "c")]), "events", ["id"])
    assert rt.version("events") == 1
    assert sorted(tuple(r) for r in rt.read("events").collect()) == [(1, "a"), (2, "B"), (3, "c")]
    assert sorted(tuple(r) for r in rt.read("events", version=0).collect()) == [(1, "a"), (2, "b")]

    # The same merge again changes no row: reruns are idempotent.
    rt.merge(_frame(rt.spark, [(2, "B"), (3, "c")]), "events", ["id"])
    assert rt.row_count("events") == 3
    assert sorted(tuple(r) for r in rt.read("events").collect()) == [(1, "a"), (2, "B"), (3, "c")]


def test_merge_creates_missing_table_and_checks_keys(local_runtime):
    rt = local_runtime
    rt.merge(_frame(rt.spark, [(1, "a")]), "fresh", ["id"])
    assert rt.version("fresh") == 0 and rt.row_count("fresh") == 1
    with pytest.raises(ValueError, match="key columns"):
        rt.merge(_frame(rt.spark, [(1, "a")]), "fresh", ["customer_id"])


def test_reading_a_missing_table_names_it(local_runtime):
    with pytest.raises(FileNotFoundError, match=r"dev\.unit_tests\.nothing_here"):
        local_runtime.read("nothing_here")


def test_local_mlflow_store_lives_in_the_local_dir(local_runtime):
    import mlflow

    rt = local_runtime
    tracking, registry = rt.mlflow_uris()
    assert tracking == registry == f"sqlite:///{(rt.local_dir / 'mlflow.db').resolve()}"
    rt.configure_mlflow()
    experiment = mlflow.create_experiment("adapter-test", artifact_location=rt.mlflow_artifact_root())
    with mlflow.start_run(experiment_id=experiment):
        mlflow.log_metric("answer", 42.0)
        mlflow.log_text("hello", "note.txt")
    assert (rt.local_dir / "mlflow.db").is_file()
    assert list(Path(rt.local_dir / "mlartifacts").rglob("note.txt"))


def test_the_mlflow_store_appears_whole_under_its_name(tmp_path):
    """MLflow migrates a new sqlite store for over a second; a run killed meanwhile used to leave a
    half-migrated ``mlflow.db`` that every later run failed on.  The store is built under another
    name and renamed, so a killed creation leaves only a stray partial file, which is ignored."""
    import sqlite3

    import mlflow

    from {{ cookiecutter.package_name }}.runtime.local import ensure_mlflow_store

    db = tmp_path / "mlflow.db"
    (tmp_path / f".{db.name}-deadbeef").write_bytes(b"half a migration")   # what a killed creation leaves
    root = (tmp_path / "mlartifacts").as_uri()
    ensure_mlflow_store(db, root)
    with sqlite3.connect(db) as connection:
        (location,) = connection.execute("SELECT artifact_location FROM experiments WHERE experiment_id = 0").fetchone()
    assert location == f"{root}/0", "the Default experiment keeps its artifacts under this store's root"
    client = mlflow.MlflowClient(f"sqlite:///{db}", f"sqlite:///{db}")
    assert client.create_experiment("whole") and client.get_experiment_by_name("whole")
    before = db.stat().st_mtime_ns
    ensure_mlflow_store(db, root)
    assert db.stat().st_mtime_ns == before, "an existing store is left as it is"
