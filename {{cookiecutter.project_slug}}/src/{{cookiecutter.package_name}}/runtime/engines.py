"""Starting and stopping local Spark engines: the embedded Sail server (Delta built in) and a
JVM SparkSession with fast test settings."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
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


@dataclass
class ClassArchive:
    """A class-data-sharing archive of the classes a local JVM Spark loads (JDK AppCDS): the JVM
    maps them instead of loading and verifying about ten thousand classes one by one, which halves
    its start-up (4.7 s to 2.4 s measured).  The first JVM records the archive when it exits;
    ``publish`` moves it into the cache, where later JVMs of the same Java and the same PySpark
    installation find it."""

    path: Path
    recording: Path | None = None
    gateway: Any = None  # the Py4J gateway of the JVM that records, set by ``start_jvm``

    @classmethod
    def in_cache(cls, delta: bool) -> ClassArchive:
        import pyspark

        java = os.environ.get("JAVA_HOME") or shutil.which("java") or "java"
        # The JVM maps an archive only on the class path it was recorded with: pyspark's own folder.
        jars = os.path.realpath(os.path.dirname(pyspark.__file__))
        identity = f"{os.path.realpath(java)}|{pyspark.__version__}|{jars}|{delta}"
        key = hashlib.sha256(identity.encode()).hexdigest()[:16]
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / PACKAGE
        return cls(cache / f"spark-classes-{key}.jsa")

    def java_option(self) -> str:
        """Map the archive, or record it; nothing when the cache cannot be written (a read-only home)."""
        if self.path.is_file():
            return f"-XX:SharedArchiveFile={self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for stale in self.path.parent.glob(f".{self.path.name}.*"):  # a recording whose JVM was killed
                if not _alive(int(stale.suffix[1:])):
                    stale.unlink(missing_ok=True)
        except (OSError, ValueError):
            return ""
        self.recording = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        return f"-XX:ArchiveClassesAtExit={self.recording}"

    def forget_if_unmapped(self, pid: int) -> bool:
        """A cached archive that the JVM ``pid`` did not map (its jars changed since it was recorded)
        is removed, so the next JVM records a fresh one instead of every JVM loading its classes one
        by one.  Only where /proc shows a process's mappings; True when it was removed."""
        maps = Path(f"/proc/{pid}/maps")
        if self.recording is not None or not self.path.is_file() or not maps.exists():
            return False
        try:
            if str(self.path) in maps.read_text():
                return False
            self.path.unlink()
        except OSError:
            return False
        return True

    def publish(self) -> None:
        """After ``spark.stop()``: end the JVM (it writes the archive as it exits) and move the
        archive into place in one rename, so a reader never maps a half-written file."""
        if self.recording is None:
            return
        from pyspark import SparkContext

        gateway = self.gateway
        try:
            if gateway is not None and getattr(gateway, "proc", None) is not None:
                gateway.shutdown()
                gateway.proc.stdin.close()  # the JVM exits when its standard input closes
                gateway.proc.wait(timeout=120)
                if SparkContext._gateway is gateway:  # the next session launches a JVM of its own
                    SparkContext._gateway = SparkContext._jvm = None
            if self.recording.is_file():
                self.recording.replace(self.path)
        except (OSError, subprocess.TimeoutExpired):
            return  # only a speed-up: the next JVM records it again


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_jvm(scratch: Path, delta: bool = True, extra: dict[str, str] | None = None,
              class_archive: ClassArchive | None = None) -> SparkSession:
    """A local JVM SparkSession with fast settings (``extra`` added on top); ``delta=True`` adds
    the Delta Lake jars through delta-spark, which downloads them from Maven on first use;
    ``class_archive`` maps (or records) the classes it loads."""
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
    if class_archive is not None:
        options = settings["spark.driver.extraJavaOptions"]
        settings["spark.driver.extraJavaOptions"] = f"{options} {class_archive.java_option()}"
    if delta:
        settings["spark.sql.extensions"] = "io.delta.sql.DeltaSparkSessionExtension"
        settings["spark.sql.catalog.spark_catalog"] = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    for key, value in settings.items():
        builder = builder.config(key, value)
    if delta:
        from delta import configure_spark_with_delta_pip

        builder = configure_spark_with_delta_pip(builder)
    spark = builder.getOrCreate()
    if class_archive is not None and class_archive.recording is not None:
        class_archive.gateway = spark.sparkContext._gateway
    elif class_archive is not None and getattr(spark.sparkContext._gateway, "proc", None) is not None:
        class_archive.forget_if_unmapped(spark.sparkContext._gateway.proc.pid)
    return spark


def stop_engine(spark: SparkSession | None, server: Any) -> None:
    """Stop the client first, then the server (the other order can hang at exit)."""
    if spark is not None:
        spark.stop()
    if server is not None:
        server.stop()
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
