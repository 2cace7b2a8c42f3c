"""The local implementation: an embedded Sail Spark Connect server (default) or a JVM
SparkSession, Delta tables under ``<local_dir>/warehouse/<catalog>/<schema>/<table>``, volumes
as folders, and MLflow with a sqlite store and artifacts under ``<local_dir>``."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import tempfile
import uuid
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import ConfigError
from ..names import BATCH, INGESTED_AT, PACKAGE, SOURCE_FILE
from .base import KnownFiles, LandedFile, PlatformError, Runtime, ServingEndpoint, check_name
from .engines import stop_engine
from .landing import landing_key, list_landing_files, read_landing_file, union_all, unreadable_reason
from .lookup import point_in_time_join

# More new files than this are read one by one (a query over thousands of files is a huge plan).
MAX_FILES_TOGETHER = 256

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from ..contract import Contract


def _blank_store(artifact_root: str) -> Path:
    """A freshly migrated, empty MLflow sqlite store for this MLflow version, made once per machine
    (migrating takes over a second) in the temporary directory and copied from then on."""
    import mlflow
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    cached = Path(tempfile.gettempdir()) / f"{PACKAGE}-mlflow-{mlflow.__version__}-blank.db"
    if not cached.is_file():
        partial = cached.with_name(f".{cached.name}-{uuid.uuid4().hex[:8]}")
        SqlAlchemyStore(f"sqlite:///{partial}", artifact_root).engine.dispose()
        partial.replace(cached)
    return cached


def ensure_mlflow_store(db: Path, artifact_root: str) -> None:
    """Create the local MLflow store whole or not at all: it is migrated (or copied from the blank
    store) under a temporary name and renamed into place.  A run killed while MLflow migrated the
    database in place used to leave a half-migrated store that every later run failed on."""
    if db.is_file():
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    partial = db.with_name(f".{db.name}-{uuid.uuid4().hex[:8]}")
    shutil.copyfile(_blank_store(artifact_root), partial)
    with closing(sqlite3.connect(partial)) as connection, connection:
        # The Default experiment (id 0) keeps its artifacts under this store's root, as MLflow would.
        connection.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                           (f"{artifact_root}/0",))
    partial.replace(db)


class RunLockHeld(PlatformError):
    """Another run of the same project and target is writing its tables."""


def _same(known: tuple[int | None, datetime | None], seen: tuple[int, datetime]) -> bool:
    """The same file as recorded: size and modification time (to the microsecond Delta keeps) unchanged."""
    size, modified = known
    return size == seen[0] and (modified is None or abs((modified - seen[1]).total_seconds()) < 1e-5)


@dataclass
class RunLock:
    """One writer per project and target: an exclusive ``flock`` on ``.local/locks/<target>.lock``.
    The operating system releases it when the process ends, however it ends, so a killed run
    never leaves a stale lock; the file says who holds it."""

    path: Path
    _handle: Any = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "a process that has not written its name yet"
            handle.close()
            raise RunLockHeld(f"another run ({holder}) holds {self.path}. Fix: wait for it to finish (the lock "
                              "is released when that process ends), or use another --local-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started at {datetime.now().isoformat(timespec='seconds')}")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


@dataclass
class LocalRuntime(Runtime):
    local_dir: Path = Path(".local")
    engine: str = "sail"
    _server: Any = None
    _owns_engine: bool = False
    _lock: RunLock | None = None
    platform: str = "local"

    def path(self, name: str) -> Path:
        return self.local_dir / "warehouse" / self.catalog / self.schema / check_name("table", name)

    def sql_ref(self, name: str) -> str:
        return f"delta.`{self.path(name)}`"

    def ensure_schema(self) -> None:
        (self.local_dir / "warehouse" / self.catalog / self.schema).mkdir(parents=True, exist_ok=True)

    def exists(self, name: str) -> bool:
        return (self.path(name) / "_delta_log").is_dir()

    def version(self, name: str) -> int | None:
        if not self.exists(name):
            return None
        from deltalake import DeltaTable

        return int(DeltaTable(str(self.path(name))).version())

    def read(self, name: str, version: int | None = None) -> DataFrame:
        if not self.exists(name):
            raise FileNotFoundError(f"table {self.table(name)} does not exist at {self.path(name)}")
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(str(self.path(name)))

    def write(self, df: DataFrame, name: str, mode: str = "overwrite") -> None:
        df.write.format("delta").mode(mode).save(str(self.path(name)))

    def volume_path(self, volume: str, *parts: str) -> str:
        base = self.local_dir / "volumes" / self.catalog / self.schema / check_name("volume", volume)
        return str(base.joinpath(*parts))

    def metrics_dir(self) -> str:
        """``<local_dir>/metrics``: the folder to point node_exporter's ``--collector.textfile.directory`` at."""
        return str(self.local_dir / "metrics")

    def mlflow_uris(self) -> tuple[str, str]:
        uri = f"sqlite:///{(self.local_dir / 'mlflow.db').resolve()}"
        return uri, uri

    def mlflow_artifact_root(self) -> str:
        return (self.local_dir / "mlartifacts").resolve().as_uri()

    def configure_mlflow(self) -> None:
        ensure_mlflow_store(self.local_dir / "mlflow.db", self.mlflow_artifact_root())
        super().configure_mlflow()

    def model_name(self, name: str) -> str:
        return check_name("model", name)

    def lineage_dataset(self, name: str, version: int | None) -> Any:
        """Delta source by path (the local catalog has no table names), named like the UC table."""
        import hashlib

        import mlflow

        digest = hashlib.sha256(f"{self.path(name)}@{version}".encode()).hexdigest()[:8]  # Sail has no semanticHash
        return mlflow.data.from_spark(self.read(name, version=version), path=str(self.path(name)),
                                      version=None if version is None else str(version), name=self.table(name),
                                      digest=digest)

    def model_location(self, name: str, version: str) -> str:
        """A local copy of the version's files, downloaded once: loading it in a scoring task skips
        the registry lookups (seconds per partition on the sqlite store)."""
        import mlflow

        folder = self.local_dir / "model_cache" / check_name("model", name) / str(int(version))
        if not (folder / "MLmodel").is_file():
            folder.parent.mkdir(parents=True, exist_ok=True)
            partial = folder.with_name(f".{folder.name}-{uuid.uuid4().hex[:8]}")
            mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(partial))
            shutil.rmtree(folder, ignore_errors=True)  # an interrupted earlier copy
            partial.replace(folder)
        return str(folder)

    def use_experiment(self, name: str) -> None:
        """Experiments keep their artifacts under the local directory."""
        import mlflow

        if mlflow.get_experiment_by_name(name) is None:
            mlflow.create_experiment(name, artifact_location=f"{self.mlflow_artifact_root()}/{name.strip('/')}")
        mlflow.set_experiment(name)

    def deploy_serving_endpoint(self, endpoint: ServingEndpoint) -> dict[str, object]:
        """No Model Serving here: the configuration a Databricks target would deploy is written to
        ``<local_dir>/serving/<endpoint>.json`` for review (rewritten only when it changes), and the
        local router (``serve``) answers requests with the same canary / shadow rules."""
        path = self.local_dir / "serving" / f"{endpoint.name}.json"
        text = json.dumps(endpoint.as_dict(), indent=2, sort_keys=True) + "\n"
        changed = not path.is_file() or path.read_text(encoding="utf-8") != text
        if changed:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}-{uuid.uuid4().hex[:8]}")
            partial.write_text(text, encoding="utf-8")
            partial.replace(path)  # a reader never sees half a file
        return {"endpoint": endpoint.name, "action": "written" if changed else "unchanged", "config": str(path),
                "serve": f"python -m {PACKAGE} serve --target {self.target} --port 8080"}

    def write_feature_table(self, df: DataFrame, name: str, keys: list[str], timestamp: str,
                            description: str) -> None:
        """A Delta table under the same three-level name; recomputed whole, so reruns are idempotent."""
        self.write(df, name, mode="overwrite")

    def training_set(self, labels: DataFrame, feature_table: str, keys: list[str], timestamp: str,
                     lookback: timedelta | None) -> DataFrame:
        return point_in_time_join(labels, self.read(feature_table), keys, timestamp, timestamp, lookback)

    def ingest_landing(self, contract: Contract, table: str, batch_id: int, known: KnownFiles) -> list[LandedFile]:
        """Incremental batch ingestion of the files ``known`` has not ingested.  A rewritten or
        appended file is ``changed``; it is read again only when the contract sets
        ``allowOverwrites`` (Auto Loader's option).  The new files are read and written in one
        query; if that fails, each file is read on its own into a staging folder, so one that
        cannot be read is returned as ``unreadable`` with the reason and the others go on.  Rows of
        the files from an interrupted earlier attempt are deleted first, so a retry never
        duplicates; the staging folder of an interrupted attempt is cleared."""
        root = Path(self.landing_path(""))
        overwrites = contract.options.get("allowOverwrites", "false").lower() == "true"
        staging = self.local_dir / "staging" / check_name("table", table)
        shutil.rmtree(staging, ignore_errors=True)
        looked: list[LandedFile] = []
        readable: dict[str, Path] = {}
        for path in list_landing_files(Path(self.landing_path(contract.path))):
            key = landing_key(path, root)
            stat = path.stat()
            seen = (stat.st_size, datetime.fromtimestamp(stat.st_mtime))
            file = LandedFile(key, 0, *seen)
            if key in known.ingested:
                if _same(known.ingested[key], seen):
                    continue
                if not overwrites:
                    looked.append(replace(file, status="changed", reason="rewritten or appended to after it "
                                          "was ingested; not read again (set allowOverwrites: \"true\" to re-ingest)"))
                    continue
            elif key in known.unreadable and _same(known.unreadable[key], seen) and key not in known.retry:
                continue
            reason = unreadable_reason(path, contract.format)
            looked.append(replace(file, status="unreadable", reason=reason) if reason else file)
            if reason is None:
                readable[key] = path
        records = self._ingest_together(contract, table, batch_id, readable, staging) if readable else {}
        if records is None:
            records, reasons = self._ingest_one_by_one(contract, table, batch_id, readable, staging)
            looked = [replace(f, status="unreadable", reason=reasons[f.path]) if f.path in reasons else f for f in looked]
        shutil.rmtree(staging, ignore_errors=True)
        result = []
        for file in looked:
            if file.status == "ingested":
                file = replace(file, records=records[file.path]) if records.get(file.path) else replace(
                    file, status="unreadable", reason="no records")
            result.append(file)
        return result

    def _append_batch(self, batch: DataFrame, table: str, batch_id: int, keys: list[str]) -> dict[str, int]:
        """Write the rows of the files ``keys`` (replacing any of an interrupted attempt); the
        records each file got, counted in the table, whichever way the files were read."""
        from pyspark.sql import functions as F

        batch = batch.withColumn(INGESTED_AT, F.current_timestamp()).withColumn(BATCH, F.lit(batch_id).cast("bigint"))
        files = self.spark.createDataFrame([(key,) for key in keys], f"{SOURCE_FILE} string")
        self.replace_matching(batch, table, files)
        written = self.read(table).where((F.col(BATCH) == batch_id) & F.col(SOURCE_FILE).isin(keys))
        return {row[SOURCE_FILE]: int(row["count"]) for row in written.groupBy(SOURCE_FILE).count().collect()}

    def _ingest_together(self, contract: Contract, table: str, batch_id: int, readable: dict[str, Path],
                         staging: Path) -> dict[str, int] | None:
        """Every file in one query (the engine parses them in parallel, no intermediate copy); the
        records per file, or None if any file failed to read (nothing is committed then)."""
        from pyspark.sql import functions as F

        if len(readable) > MAX_FILES_TOGETHER:
            return None
        try:
            frames = [read_landing_file(self.spark, path, contract, staging / "read").withColumn(SOURCE_FILE, F.lit(key))
                      for key, path in readable.items()]
            return self._append_batch(union_all(frames), table, batch_id, list(readable))
        except (ConfigError, KeyboardInterrupt):
            raise
        except Exception:  # some file cannot be read: find which, one by one
            return None

    def _ingest_one_by_one(self, contract: Contract, table: str, batch_id: int, readable: dict[str, Path],
                           staging: Path) -> tuple[dict[str, int], dict[str, str]]:
        """Each file read on its own into ``staging``, then the readable ones appended together:
        the records per file, and why each unreadable one failed."""
        import pyarrow.parquet as pq
        from pyspark.sql import functions as F

        staged: dict[str, Path] = {}
        reasons: dict[str, str] = {}
        for index, (key, path) in enumerate(readable.items()):
            rows_dir = staging / "rows" / f"{index:06d}"
            try:
                read_landing_file(self.spark, path, contract, staging / "read").withColumn(
                    SOURCE_FILE, F.lit(key)).write.parquet(str(rows_dir))
            except (ConfigError, KeyboardInterrupt):
                raise
            except Exception as exc:  # any reader failure is this file's, reported with its reason
                reasons[key] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
            else:  # a file without records leaves no row files to read back
                if any(pq.read_metadata(part).num_rows for part in rows_dir.glob("*.parquet")):
                    staged[key] = rows_dir
        if not staged:
            return {}, reasons
        rows = self.spark.read.parquet(*[str(folder) for folder in staged.values()])
        return self._append_batch(rows, table, batch_id, list(staged)), reasons

    def close(self) -> None:
        super().close()
        if self._owns_engine:
            stop_engine(self.spark, self._server)
        if self._lock is not None:
            self._lock.release()
