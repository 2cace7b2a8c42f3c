"""The runtime adapter's interface: table I/O, volumes and MLflow settings for one target.

Stages call ``Runtime`` methods with short table names (``bronze_events``) and never build
paths, Unity Catalog names or MLflow URIs themselves.  ``databricks.py`` and ``local.py``
implement it; this package is the only code that knows where the code runs.
"""

from __future__ import annotations

import os
import re
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..names import LANDING_VOLUME

if TYPE_CHECKING:
    from databricks.sdk.service.serving import AiGatewayConfig, EndpointCoreConfigInput, EndpointTag
    from pyspark.sql import DataFrame, SparkSession

    from ..contract import Contract


@dataclass
class LandedFile:
    """A landing file bronze looked at: appended with its record count (``ingested``), left out
    because it cannot be read (``unreadable``, with the reason), or already ingested and since
    rewritten or appended to (``changed``: reported, re-ingested only with ``allowOverwrites``)."""

    path: str
    records: int
    size: int | None = None
    modified: datetime | None = None
    status: str = "ingested"
    reason: str | None = None


@dataclass
class KnownFiles:
    """What bronze already knows about a source's files, by landing key (the path relative to the
    landing volume): size and modification time when ingested, or when they could not be read."""

    ingested: dict[str, tuple[int | None, datetime | None]] = field(default_factory=dict)
    unreadable: dict[str, tuple[int | None, datetime | None]] = field(default_factory=dict)
    # Unreadable files to try again although they have not changed (``run --retry-file``).
    retry: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class ServingEndpoint:
    """A Model Serving endpoint as databricks-sdk's request classes describe it: the served entities
    and traffic (``config``, whose ``name`` is the endpoint's), the AI gateway and the tags.  The
    deploy_serving stage builds it; the runtime deploys it (``Runtime.deploy_serving_endpoint``)."""

    config: EndpointCoreConfigInput
    ai_gateway: AiGatewayConfig
    tags: list[EndpointTag]

    @property
    def name(self) -> str:
        return self.config.name

    def as_dict(self) -> dict[str, Any]:
        """The JSON request bodies of the three parts (what the local runtime writes)."""
        return {"name": self.name, "config": self.config.as_dict(), "ai_gateway": self.ai_gateway.as_dict(),
                "tags": [tag.as_dict() for tag in self.tags]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServingEndpoint:
        """Read ``as_dict`` back.  databricks-sdk is imported here, not at the top: importing it takes
        about a second, which every command would pay for what only serving needs."""
        from databricks.sdk.service.serving import AiGatewayConfig, EndpointCoreConfigInput, EndpointTag

        return cls(EndpointCoreConfigInput.from_dict(data["config"]), AiGatewayConfig.from_dict(data["ai_gateway"]),
                   [EndpointTag.from_dict(tag) for tag in data.get("tags") or []])


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

    def metrics_dir(self) -> str:
        """The folder each run writes its Prometheus textfile to: ``metrics/`` in the landing volume."""
        return self.volume_path(LANDING_VOLUME, "metrics")

    def secret(self, scope: str, key: str) -> str | None:
        """A secret from a Databricks secret scope; None where there are no secret scopes (local)."""
        return None

    @abstractmethod
    def mlflow_uris(self) -> tuple[str, str]:
        """(tracking URI, registry URI)."""

    @abstractmethod
    def ensure_schema(self) -> None:
        """Make sure the schema exists (Databricks: created by the bundle; local: a folder)."""

    @abstractmethod
    def deploy_serving_endpoint(self, endpoint: ServingEndpoint) -> dict[str, object]:
        """Create the real-time endpoint, or bring an existing one to ``endpoint``; return what was done.
        Deploying the same ``endpoint`` again changes nothing."""

    def landing_path(self, path: str) -> str:
        """A contract's ``path``: relative paths live in the landing volume, others are used as they are."""
        if "://" in path or path.startswith("/"):
            return path
        return self.volume_path(LANDING_VOLUME, *Path(path).parts)

    @abstractmethod
    def ingest_landing(self, contract: Contract, table: str, batch_id: int, known: KnownFiles) -> list[LandedFile]:
        """Append the landing files of ``contract`` not ingested yet to the bronze ``table``, exactly
        once, tagged with ``batch_id``; return every file looked at (an empty list when nothing is new)."""

    @abstractmethod
    def write_feature_table(self, df: DataFrame, name: str, keys: list[str], timestamp: str,
                            description: str) -> None:
        """Publish a feature table keyed by ``keys`` + ``timestamp`` (a time-series feature table)."""

    @abstractmethod
    def training_set(self, labels: DataFrame, feature_table: str, keys: list[str], timestamp: str,
                     lookback: timedelta | None) -> DataFrame:
        """Point-in-time training set: each label row with the latest features at or before its time."""

    def delete_matching(self, name: str, keys: DataFrame) -> None:
        """Delete the rows whose ``keys`` columns equal a row of ``keys``: values travel as data
        (a MERGE with a view), never pasted into SQL text, so any file name or value is safe."""
        if not self.exists(name):
            return
        view = f"_delete_keys_{uuid.uuid4().hex[:12]}"
        keys.createOrReplaceTempView(view)
        self._views.append(view)
        condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys.columns)
        self.spark.sql(f"MERGE INTO {self.sql_ref(name)} t USING {view} s ON {condition} "
                       "WHEN MATCHED THEN DELETE").collect()

    def replace_matching(self, df: DataFrame, name: str, keys: DataFrame) -> None:
        """``delete_matching`` then append ``df``: a retried write never duplicates."""
        if self.exists(name):
            self.delete_matching(name, keys)
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


