"""The runtime adapter: the only package that knows where the code runs.

``open_runtime`` returns a ``DatabricksRuntime`` on Databricks and a ``LocalRuntime`` (embedded
Sail with Delta, or a JVM SparkSession) elsewhere; both implement ``Runtime`` (``base.py``).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .base import KnownFiles, LandedFile, PlatformError, Runtime, ServingEndpoint, check_name, on_databricks
from .databricks import DatabricksRuntime
from .engines import ENGINES, ClassArchive, start_jvm, start_sail, stop_engine
from .local import LocalRuntime, RunLock, RunLockHeld

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = [
    "ENGINES", "ClassArchive", "DatabricksRuntime", "KnownFiles", "LandedFile", "LocalRuntime", "PlatformError", "RunLock", "RunLockHeld", "Runtime",
    "ServingEndpoint", "check_name", "on_databricks", "open_runtime", "start_jvm", "start_sail", "stop_engine",
]


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
    lock = RunLock(local_dir / "locks" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', target)}.lock")
    lock.acquire()  # before the engine starts: a second run fails at once, naming the first
    server = None
    owns_engine = spark is None
    try:
        if spark is None:
            if engine == "sail":
                spark, server = start_sail()
            else:
                spark = start_jvm(Path(tempfile.mkdtemp(prefix="spark-", dir=local_dir)))
    except BaseException:
        lock.release()
        raise
    runtime = LocalRuntime(
        target=target, catalog=catalog, schema=schema, spark=spark, local_dir=local_dir, engine=engine
    )
    runtime._server = server
    runtime._owns_engine = owns_engine
    runtime._lock = lock
    return runtime
