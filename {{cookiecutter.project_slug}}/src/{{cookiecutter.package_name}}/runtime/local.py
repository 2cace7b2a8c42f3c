"""The local implementation: an embedded Sail Spark Connect server (default) or a JVM
SparkSession, Delta tables under ``<local_dir>/warehouse/<catalog>/<schema>/<table>``, volumes
as folders, and MLflow with a sqlite store and artifacts under ``<local_dir>``."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..names import BATCH, INGESTED_AT, SOURCE_FILE
from .base import LandedFile, Runtime, check_name
from .engines import stop_engine
from .landing import list_landing_files, read_landing_file
from .lookup import point_in_time_join

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from ..contract import Contract


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
        return point_in_time_join(labels, self.read(feature_table), keys, timestamp, timestamp, lookback)

    def ingest_landing(self, contract: Contract, table: str, batch_id: int, seen: set[str]) -> list[LandedFile]:
        """Incremental batch ingestion: every file not in ``seen`` (the ingest log) is read, tagged
        with its path and appended.  Rows of those files from an interrupted earlier attempt are
        deleted first, so a retry never duplicates."""
        from pyspark.sql import functions as F

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
