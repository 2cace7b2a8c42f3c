"""The Databricks implementation: the ambient SparkSession, Unity Catalog tables
``catalog.schema.table``, volumes, Auto Loader, Feature Engineering in Unity Catalog and MLflow
with the ``databricks`` / ``databricks-uc`` URIs.  None of it can run off Databricks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..names import BATCH, CORRUPT, INGESTED_AT, LABEL, LANDING_VOLUME, RESCUED, SOURCE_FILE
from .base import KnownFiles, LandedFile, Runtime, ServingEndpoint, check_name
from .landing import FILE_OPTIONS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from ..contract import Contract


def served(config: Any) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """What an endpoint configuration serves, comparable between the request (``EndpointCoreConfigInput``)
    and what ``get`` returns (``EndpointCoreConfigOutput``, with states and timestamps besides)."""
    entities = sorted((e.name, e.entity_name, str(e.entity_version), e.workload_size, bool(e.scale_to_zero_enabled))
                      for e in (config.served_entities if config else None) or [])
    routes = sorted((r.served_entity_name or r.served_model_name, r.traffic_percentage)
                    for r in (config.traffic_config.routes if config and config.traffic_config else None) or [])
    return entities, routes


def inference_table(gateway: Any) -> tuple[object, ...] | None:
    table = gateway.inference_table_config if gateway else None
    return (table.catalog_name, table.schema_name, table.table_name_prefix, bool(table.enabled)) if table else None


def rate_limits(gateway: Any) -> list[tuple[object, ...]]:
    return sorted((r.calls, getattr(r.key, "value", r.key), getattr(r.renewal_period, "value", r.renewal_period))
                  for r in (gateway.rate_limits if gateway else None) or [])


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

    def secret(self, scope: str, key: str) -> str | None:
        """``dbutils.secrets.get``: databricks-sdk's ``dbutils`` is the notebook's own on Databricks."""
        from databricks.sdk.runtime import dbutils

        return str(dbutils.secrets.get(scope=scope, key=key))

    def deploy_serving_endpoint(self, endpoint: ServingEndpoint) -> dict[str, object]:
        """Create the endpoint, or update only the parts that differ from ``endpoint``: the served
        entities and traffic (a new endpoint config, which Databricks rolls out without downtime), the
        AI gateway, and the tags (added or changed; tags set by hand are kept).  Nothing differs on a
        rerun with the same aliases, so nothing is called but ``get``."""
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.errors import NotFound
        from databricks.sdk.service.serving import AiGatewayInferenceTableConfig, EndpointStateConfigUpdate

        client = WorkspaceClient()
        api, name = client.serving_endpoints, endpoint.name
        url = f"{(client.config.host or '').rstrip('/')}/ml/endpoints/{name}"
        try:
            current = api.get(name)
        except NotFound:
            api.create_and_wait(name, config=endpoint.config, ai_gateway=endpoint.ai_gateway, tags=endpoint.tags)
            return {"endpoint": name, "action": "created", "url": url}
        if current.state is not None and current.state.config_update == EndpointStateConfigUpdate.IN_PROGRESS:
            current = api.wait_get_serving_endpoint_not_updating(name)  # an update cannot start during another
        changed = []
        if served(current.config) != served(endpoint.config):
            api.update_config_and_wait(name, served_entities=endpoint.config.served_entities,
                                       traffic_config=endpoint.config.traffic_config)
            changed.append("served entities")
        wanted = endpoint.ai_gateway
        old, new = inference_table(current.ai_gateway), inference_table(wanted)
        if old != new or rate_limits(current.ai_gateway) != rate_limits(wanted):
            if old is not None and new is not None and old[3] and old[:3] != new[:3]:
                # The table's catalog, schema or prefix can only change while it is disabled.
                api.put_ai_gateway(name, inference_table_config=AiGatewayInferenceTableConfig(enabled=False),
                                   rate_limits=wanted.rate_limits)
            api.put_ai_gateway(name, inference_table_config=wanted.inference_table_config,
                               rate_limits=wanted.rate_limits)
            changed.append("ai gateway")
        have = {tag.key: tag.value for tag in current.tags or []}
        add = [tag for tag in endpoint.tags if have.get(tag.key) != tag.value]
        if add:
            api.patch(name, add_tags=add)
            changed.append("tags")
        return {"endpoint": name, "action": f"updated {', '.join(changed)}" if changed else "unchanged", "url": url}

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
            df=labels, feature_lookups=[lookup], label=LABEL).load_df()

    def ingest_landing(self, contract: Contract, table: str, batch_id: int, known: KnownFiles) -> list[LandedFile]:
        """Auto Loader: the checkpoint in the landing volume makes ingestion exactly once (``known``
        is the local runtime's bookkeeping; the checkpoint plays its part here, and Auto Loader's
        ``cloudFiles.allowOverwrites`` decides about rewritten files)."""
        from pyspark.sql import functions as F

        schema = ", ".join(f"`{c.source}` STRING" for c in contract.columns) + f", `{CORRUPT}` STRING"
        stream = (
            self.spark.readStream.format("cloudFiles")
            .option("cloudFiles.format", contract.format)
            .option("cloudFiles.schemaLocation", self.volume_path(LANDING_VOLUME, "schemas", table))
            .option("cloudFiles.inferColumnTypes", "false")
            .option("cloudFiles.schemaEvolutionMode", "rescue")
            .option("rescuedDataColumn", RESCUED)
            .option("columnNameOfCorruptRecord", CORRUPT)
            .options(**{("cloudFiles." + k if k in FILE_OPTIONS else k): v for k, v in contract.options.items()})
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
