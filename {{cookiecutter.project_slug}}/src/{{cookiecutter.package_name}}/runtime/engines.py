"""Starting and stopping local Spark engines: the embedded Sail server (Delta built in) and a
JVM SparkSession with fast test settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..names import PACKAGE

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ENGINES = ("sail", "jvm")

# PySpark records the caller's file and line for every DataFrame and Column call (to enrich server
# errors), and on each call it also tries to import IPython: a failed import that scans sys.path
# every time.  That was a fifth of the CPU of a local run; the local engines switch it off.
NO_CALL_SITES = {"spark.python.sql.dataFrameDebugging.enabled": "false"}

JVM_TEST_SETTINGS = {
    **NO_CALL_SITES,
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.driver.extraJavaOptions": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:CICompilerCount=1",
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
    for key, value in NO_CALL_SITES.items():
        spark.conf.set(key, value)
    return spark, server


def start_jvm(scratch: Path, delta: bool = True, extra: dict[str, str] | None = None) -> SparkSession:
    """A local JVM SparkSession with fast settings (``extra`` added on top); ``delta=True`` adds
    the Delta Lake jars through delta-spark, which downloads them from Maven on first use."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers (scoring, per-segment training) run this interpreter, not whichever ``python3``
    # is first on PATH, which lacks the project's packages unless a venv is active.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[2]").appName(PACKAGE)
    settings = {
        **JVM_TEST_SETTINGS,
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.warehouse.dir": str(scratch / "spark-warehouse"),
        "spark.jars.ivy": str(scratch / "ivy"),
        **(extra or {}),
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
