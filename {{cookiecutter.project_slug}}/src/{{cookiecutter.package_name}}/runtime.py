"""The runtime adapter: the only module that knows where the code runs.

Stages call ``Runtime`` methods with short table names (``bronze_events``) and never
build paths, Unity Catalog names or MLflow URIs themselves.  Two implementations:

* ``DatabricksRuntime``: the ambient SparkSession, Unity Catalog tables
  ``catalog.schema.table``, MLflow with the ``databricks`` / ``databricks-uc`` URIs.
* ``LocalRuntime``: an embedded Sail Spark Connect server (default) or a JVM
  SparkSession, Delta tables under ``<local_dir>/warehouse/<catalog>/<schema>/<table>``,
  and MLflow with a sqlite store and artifacts under ``<local_dir>``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from .contract import Contract

ENGINES = ("sail", "jvm")
LANDING_VOLUME = "landing"


@dataclass
class LandedFile:
    """A landing file appended to bronze, with its record count."""

    path: str
    records: int
    size: int | None = None
    modified: datetime | None = None


class PlatformError(RuntimeError):
    """The requested target cannot run here; the message says where it can."""
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def on_databricks() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{kind} name {name!r} is not a valid Unity Catalog name (lowercase, digits, _)")
    return name


@dataclass
class Runtime(ABC):
    """Table I/O and MLflow settings for one target."""

    target: str
    catalog: str
    schema: str
    spark: SparkSession
    _views: list[str] = field(default_factory=list, repr=False)

    platform: str = "abstract"

    def table(self, name: str) -> str:
        """Three-level Unity Catalog name of a project table."""
        return f"{self.catalog}.{self.schema}.{check_name('table', name)}"

    @abstractmethod
    def sql_ref(self, name: str) -> str:
        """How SQL statements refer to the table."""

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def version(self, name: str) -> int | None:
        """Latest Delta version of the table, or None if it does not exist."""

    @abstractmethod
    def read(self, name: str, version: int | None = None) -> DataFrame: ...

    @abstractmethod
    def write(self, df: DataFrame, name: str, mode: str = "overwrite") -> None: ...

    @abstractmethod
    def volume_path(self, volume: str, *parts: str) -> str:
        """Path of a file in a Unity Catalog volume (a local folder when local)."""

    @abstractmethod
    def mlflow_uris(self) -> tuple[str, str]:
        """(tracking URI, registry URI)."""

    @abstractmethod
    def ensure_schema(self) -> None:
        """Make sure the schema exists (Databricks: created by the bundle; local: a folder)."""

    def landing_path(self, path: str) -> str:
        """A contract's ``path``: relative paths live in the landing volume, others are used as they are."""
        if "://" in path or path.startswith("/"):
            return path
        return self.volume_path(LANDING_VOLUME, *Path(path).parts)

    @abstractmethod
    def ingest_landing(self, contract: Contract, table: str, batch_id: int, seen: set[str]) -> list[LandedFile]:
        """Append the landing files of ``contract`` not ingested yet to the bronze ``table``, exactly
        once, tagged with ``batch_id``; return what was appended (an empty list when nothing is new)."""

    @abstractmethod
    def write_feature_table(self, df: DataFrame, name: str, keys: list[str], timestamp: str,
                            description: str) -> None:
        """Publish a feature table keyed by ``keys`` + ``timestamp`` (a time-series feature table)."""

    @abstractmethod
    def training_set(self, labels: DataFrame, feature_table: str, keys: list[str], timestamp: str,
                     lookback: timedelta | None) -> DataFrame:
        """Point-in-time training set: each label row with the latest features at or before its time."""

    def delete_where(self, name: str, condition: str) -> None:
        self.spark.sql(f"DELETE FROM {self.sql_ref(name)} WHERE {condition}").collect()

    def replace_rows(self, df: DataFrame, name: str, condition: str) -> None:
        """Delete the rows matching ``condition``, then append ``df``: a retried write never duplicates."""
        if self.exists(name):
            self.delete_where(name, condition)
            self.write(df, name, mode="append")
        else:
            self.write(df, name, mode="overwrite")

    def merge(self, df: DataFrame, name: str, keys: list[str], update_when: str | None = None,
              insert_only: bool = False) -> None:
        """Upsert ``df`` into the table by ``keys`` (rows must be unique by key); create it if missing.
        ``update_when`` limits updates (SQL over ``s`` source and ``t`` target, e.g. newer event time);
        ``insert_only`` never touches existing rows.

        Rerunning the same merge leaves the table unchanged, which makes stages idempotent.
        """
        if not keys:
            raise ValueError("merge needs at least one key column")
        missing = [k for k in keys if k not in df.columns]
        if missing:
            raise ValueError(f"merge into {name}: key columns {missing} are not in the data")
        if not self.exists(name):
            self.write(df, name, mode="overwrite")
            return
        view = f"_merge_source_{uuid.uuid4().hex[:12]}"
        df.createOrReplaceTempView(view)
        self._views.append(view)
        condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        update = "" if insert_only else f"WHEN MATCHED {'AND ' + update_when if update_when else ''} THEN UPDATE SET * "
        self.spark.sql(
            f"MERGE INTO {self.sql_ref(name)} t USING {view} s ON {condition} {update}WHEN NOT MATCHED THEN INSERT *"
        ).collect()

    def update_columns(self, df: DataFrame, name: str, keys: list[str], columns: list[str], when: str) -> None:
        """Set ``columns`` of existing rows from ``df`` (matched by ``keys``) where ``when`` holds."""
        view = f"_update_source_{uuid.uuid4().hex[:12]}"
        df.createOrReplaceTempView(view)
        self._views.append(view)
        condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        assignments = ", ".join(f"t.`{c}` = s.`{c}`" for c in columns)
        self.spark.sql(
            f"MERGE INTO {self.sql_ref(name)} t USING {view} s ON {condition} "
            f"WHEN MATCHED AND {when} THEN UPDATE SET {assignments}"
        ).collect()

    def row_count(self, name: str) -> int:
        return self.read(name).count()

    def model_name(self, name: str) -> str:
        """Registered model name: ``catalog.schema.name`` in Unity Catalog, ``name`` locally."""
        return self.table(name)

    def use_experiment(self, name: str) -> None:
        import mlflow

        mlflow.set_experiment(name if name.startswith("/") else f"/Shared/{name}")

    def model_location(self, name: str, version: str) -> str:
        """Where scoring tasks load a model version from (Databricks: the registry itself)."""
        return f"models:/{name}/{version}"

    def lineage_dataset(self, name: str, version: int | None) -> Any:
        """An MLflow dataset naming the table and its Delta version, for ``mlflow.log_input``."""
        import mlflow

        return mlflow.data.from_spark(self.read(name, version=version), table_name=self.table(name),
                                      version=None if version is None else str(version))

    def configure_mlflow(self) -> None:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        import mlflow

        tracking, registry = self.mlflow_uris()
        mlflow.set_tracking_uri(tracking)
        mlflow.set_registry_uri(registry)

    def close(self) -> None:
        for view in self._views:
            self.spark.catalog.dropTempView(view)
        self._views.clear()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class DatabricksRuntime(Runtime):
    platform: str = "databricks"

    def sql_ref(self, name: str) -> str:
        return self.table(name)

    def ensure_schema(self) -> None:
        self.spark.sql(f"DESCRIBE SCHEMA {self.catalog}.{self.schema}").collect()

    def exists(self, name: str) -> bool:
        return bool(self.spark.catalog.tableExists(self.table(name)))

    def version(self, name: str) -> int | None:
        if not self.exists(name):
            return None
        return int(self.spark.sql(f"DESCRIBE HISTORY {self.table(name)} LIMIT 1").first()["version"])

    def read(self, name: str, version: int | None = None) -> DataFrame:
        reader = self.spark.read
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.table(self.table(name))

    def write(self, df: DataFrame, name: str, mode: str = "overwrite") -> None:
        df.write.format("delta").mode(mode).option("overwriteSchema", mode == "overwrite").saveAsTable(
            self.table(name)
        )

    def volume_path(self, volume: str, *parts: str) -> str:
        return "/".join(["/Volumes", self.catalog, self.schema, check_name("volume", volume), *parts])

    def mlflow_uris(self) -> tuple[str, str]:
        return "databricks", "databricks-uc"

    def write_feature_table(self, df: DataFrame, name: str, keys: list[str], timestamp: str,
                            description: str) -> None:
        from databricks.feature_engineering import FeatureEngineeringClient

        client = FeatureEngineeringClient()
        if self.exists(name):
            client.write_table(name=self.table(name), df=df, mode="merge")
        else:
            client.create_table(name=self.table(name), primary_keys=[*keys, timestamp], timestamp_keys=[timestamp],
                                df=df, description=description)

    def training_set(self, labels: DataFrame, feature_table: str, keys: list[str], timestamp: str,
                     lookback: timedelta | None) -> DataFrame:
        from databricks.feature_engineering import FeatureEngineeringClient, FeatureLookup

        lookup = FeatureLookup(table_name=self.table(feature_table), lookup_key=keys,
                               timestamp_lookup_key=timestamp, lookback_window=lookback)
        return FeatureEngineeringClient().create_training_set(
            df=labels, feature_lookups=[lookup], label="label").load_df()

    def ingest_landing(self, contract: Contract, table: str, batch_id: int, seen: set[str]) -> list[LandedFile]:
        """Auto Loader: the checkpoint in the landing volume makes ingestion exactly once."""
        from pyspark.sql import functions as F

        from .quality import BATCH, CORRUPT, INGESTED_AT, RESCUED, SOURCE_FILE

        schema = ", ".join(f"`{c.source}` STRING" for c in contract.columns) + f", `{CORRUPT}` STRING"
        stream = (
            self.spark.readStream.format("cloudFiles")
            .option("cloudFiles.format", contract.format)
            .option("cloudFiles.schemaLocation", self.volume_path(LANDING_VOLUME, "schemas", table))
            .option("cloudFiles.inferColumnTypes", "false")
            .option("cloudFiles.schemaEvolutionMode", "rescue")
            .option("rescuedDataColumn", RESCUED)
            .option("columnNameOfCorruptRecord", CORRUPT)
            .options(**contract.options)
            .schema(schema)
            .load(self.landing_path(contract.path))
            .select(
                *[F.col(f"`{c.source}`").alias(c.name) for c in contract.columns],
                RESCUED,
                CORRUPT,
                F.col("_metadata.file_path").alias(SOURCE_FILE),
                F.current_timestamp().alias(INGESTED_AT),
                F.lit(batch_id).cast("bigint").alias(BATCH),
            )
        )
        query = (
            stream.writeStream.option("checkpointLocation", self.volume_path(LANDING_VOLUME, "checkpoints", table))
            .trigger(availableNow=True)
            .toTable(self.table(table))
        )
        query.awaitTermination()
        counts = self.spark.sql(
            f"SELECT {SOURCE_FILE} AS path, count(*) AS records FROM {self.table(table)} "
            f"WHERE {BATCH} = {int(batch_id)} GROUP BY 1"
        ).collect()
        return [LandedFile(row["path"], int(row["records"])) for row in counts]


@dataclass
class LocalRuntime(Runtime):
    local_dir: Path = Path(".local")
    engine: str = "sail"
    _server: Any = None
    _owns_engine: bool = False
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

    def mlflow_uris(self) -> tuple[str, str]:
        uri = f"sqlite:///{(self.local_dir / 'mlflow.db').resolve()}"
        return uri, uri

    def mlflow_artifact_root(self) -> str:
        return (self.local_dir / "mlartifacts").resolve().as_uri()

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

    def write_feature_table(self, df: DataFrame, name: str, keys: list[str], timestamp: str,
                            description: str) -> None:
        """A Delta table under the same three-level name; recomputed whole, so reruns are idempotent."""
        self.write(df, name, mode="overwrite")

    def training_set(self, labels: DataFrame, feature_table: str, keys: list[str], timestamp: str,
                     lookback: timedelta | None) -> DataFrame:
        from .features import point_in_time_join

        return point_in_time_join(labels, self.read(feature_table), keys, timestamp, timestamp, lookback)

    def ingest_landing(self, contract: Contract, table: str, batch_id: int, seen: set[str]) -> list[LandedFile]:
        """Incremental batch ingestion: every file not in ``seen`` (the ingest log) is read, tagged
        with its path and appended.  Rows of those files from an interrupted earlier attempt are
        deleted first, so a retry never duplicates."""
        from pyspark.sql import functions as F

        from .landing import list_landing_files, read_landing_file
        from .quality import BATCH, INGESTED_AT, SOURCE_FILE

        new = [f for f in list_landing_files(Path(self.landing_path(contract.path))) if str(f) not in seen]
        if not new:
            return []
        frames = [read_landing_file(self.spark, path, contract) for path in new]
        batch = frames[0]
        for frame in frames[1:]:
            batch = batch.unionByName(frame)
        batch = batch.withColumn(INGESTED_AT, F.current_timestamp()).withColumn(
            BATCH, F.lit(batch_id).cast("bigint"))
        names = ", ".join("'" + str(p).replace("'", "''") + "'" for p in new)
        self.replace_rows(batch, table, f"{SOURCE_FILE} IN ({names})")
        counts = {
            row[SOURCE_FILE]: int(row["count"])
            for row in self.read(table).where(F.col(BATCH) == batch_id).groupBy(SOURCE_FILE).count().collect()
        }
        return [
            LandedFile(str(p), counts.get(str(p), 0), p.stat().st_size,
                       datetime.fromtimestamp(p.stat().st_mtime))
            for p in new
        ]

    def close(self) -> None:
        super().close()
        if self._owns_engine:
            stop_engine(self.spark, self._server)


# --- engines -------------------------------------------------------------------------------------

JVM_TEST_SETTINGS = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.driver.extraJavaOptions": "-XX:+UseParallelGC -XX:TieredStopAtLevel=1",
}


def start_sail() -> tuple[SparkSession, Any]:
    """Start the embedded Sail Spark Connect server and a client session on it."""
    os.environ.setdefault("RUST_LOG", "error")
    from pysail.spark import SparkConnectServer
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    host, port = server.listening_address
    # pyspark.sql.functions dispatch on this flag; the public builder sets it too, but refuses
    # to start while a JVM session exists in the process (the test suite runs both lanes).
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    spark = ConnectSession.builder.remote(f"sc://{host}:{port}").create()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    return spark, server


def start_jvm(scratch: Path, delta: bool = True) -> SparkSession:
    """A local JVM SparkSession with fast settings; ``delta=True`` adds the Delta Lake jars
    through delta-spark, which downloads them from Maven on first use."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[2]").appName(str(__package__))
    settings = {
        **JVM_TEST_SETTINGS,
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.warehouse.dir": str(scratch / "spark-warehouse"),
        "spark.jars.ivy": str(scratch / "ivy"),
    }
    if delta:
        settings["spark.sql.extensions"] = "io.delta.sql.DeltaSparkSessionExtension"
        settings["spark.sql.catalog.spark_catalog"] = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    for key, value in settings.items():
        builder = builder.config(key, value)
    if delta:
        from delta import configure_spark_with_delta_pip

        builder = configure_spark_with_delta_pip(builder)
    return builder.getOrCreate()


def stop_engine(spark: SparkSession | None, server: Any) -> None:
    """Stop the client first, then the server (the other order can hang at exit)."""
    if spark is not None:
        spark.stop()
    if server is not None:
        server.stop()
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)


def open_runtime(
    target: str,
    catalog: str,
    schema: str,
    platform: str,
    local_dir: Path | None = None,
    engine: str = "sail",
    spark: SparkSession | None = None,
) -> Runtime:
    """Build the runtime for a target.  Pass ``spark`` to reuse a session (tests, notebooks)."""
    check_name("catalog", catalog)
    check_name("schema", schema)
    if platform == "databricks":
        if spark is None:
            if not on_databricks():
                raise PlatformError(
                    f"target {target!r} runs on Databricks. Fix: run it as a bundle job "
                    "(databricks bundle run), or use --target local on this machine"
                )
            from pyspark.sql import SparkSession

            spark = SparkSession.builder.getOrCreate()
        return DatabricksRuntime(target=target, catalog=catalog, schema=schema, spark=spark)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; use one of {ENGINES}")
    local_dir = Path(local_dir or ".local").resolve()
    local_dir.mkdir(parents=True, exist_ok=True)
    server = None
    owns_engine = spark is None
    if spark is None:
        if engine == "sail":
            spark, server = start_sail()
        else:
            spark = start_jvm(Path(tempfile.mkdtemp(prefix="spark-", dir=local_dir)))
    runtime = LocalRuntime(
        target=target, catalog=catalog, schema=schema, spark=spark, local_dir=local_dir, engine=engine
    )
    runtime._server = server
    runtime._owns_engine = owns_engine
    return runtime
