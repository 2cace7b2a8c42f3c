"""Names shared across layers: bookkeeping columns every medallion table carries, and the
project's tables.  Renaming a table or column here renames it everywhere."""

from __future__ import annotations

# The import name of this package (``python -m PACKAGE``).
PACKAGE = str(__package__)

# Bronze bookkeeping columns (the Auto Loader names on Databricks, the same locally).
RESCUED = "_rescued_data"
CORRUPT = "_corrupt_record"
SOURCE_FILE = "_source_file"
INGESTED_AT = "_ingested_at"
INGEST_DATE = "_ingest_date"
BATCH = "_batch_id"
BRONZE_META = [RESCUED, CORRUPT, SOURCE_FILE, INGESTED_AT, BATCH]
# Columns every silver row carries; a source without an event time uses them as its time.
INGEST_COLUMNS = (INGESTED_AT, INGEST_DATE)

# The numeric label of gold rows, training sets and the inference table.
LABEL = "label"
# Model outputs per problem type: the prediction, and the positive-class probability.
SCORE_COLUMNS = {"classification": ["prediction", "probability"], "regression": ["prediction"]}

# The Unity Catalog volume (a local folder when local) with raw files, checkpoints and reports.
LANDING_VOLUME = "landing"

# Tables the project writes besides the per-source medallion tables (see contract.Contract).
RUNS_TABLE = "pipeline_runs"
INGEST_LOG_TABLE = "ingest_log"
# Landing files that could not be read (path, reason): the other files of their batch go on.
INGEST_ERRORS_TABLE = "ingest_errors"
# Who skipped or replayed which ingest batch, when and why.
BATCH_DECISIONS_TABLE = "batch_decisions"
INGEST_STATE_TABLE = "ingest_state"
INGEST_METRICS_TABLE = "ingest_metrics"
VALIDATION_RESULTS_TABLE = "validation_results"
# One row per check: the data expectations of each ingest batch, and the model checks of each validated
# version (source: the model; batch_from and batch_to: its version; examples: the per-group figures).
VALIDATION_RESULTS_SCHEMA = (
    "run_id string, source string, batch_from bigint, batch_to bigint, expectation string, type string, "
    "column string, success boolean, unexpected_count bigint, element_count bigint, examples string, "
    "error string, validated_at timestamp")
# What a rerun replaces in it: one source's rows for one batch range (or model version).
VALIDATION_RESULTS_KEY = "source string, batch_from bigint, batch_to bigint"
TRAINING_SET_TABLE = "training_set"
BASELINE_TABLE = "monitoring_baseline_input"
INFERENCE_TABLE = "inference_log"
# Every request the local real-time router answered, with the shadow answer it did not return.
SERVING_LOG_TABLE = "serving_log"
# Tables only a local run writes (on Databricks the endpoint's AI gateway inference table stands in).
LOCAL_ONLY_TABLES = (SERVING_LOG_TABLE,)
DRIFT_TABLE = "drift_metrics"
# One row per registered model version: aliases, metrics, training data versions, library versions,
# the alias audit trail and when it last scored (the inventory stage rewrites it).
INVENTORY_TABLE = "model_inventory"
# @challenger against @champion on the same labelled rows of each shadow-scored period.
SHADOW_TABLE = "shadow_comparisons"
