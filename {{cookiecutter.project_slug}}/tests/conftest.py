"""Two test lanes, each with one session-scoped engine.

* ``jvm``: pure transformations on a real JVM SparkSession (no Delta needed).
* ``sail``: Delta round trips through the runtime adapter on the embedded Sail server.

pyspark.sql.functions dispatch to Spark Connect once the Sail session starts, so every
JVM test runs before the first Sail test (see pytest_collection_modifyitems).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="mpl-"))


def _lane(item: pytest.Item) -> int:
    if item.get_closest_marker("jvm"):
        return 0
    if item.get_closest_marker("sail"):
        return 2
    return 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_lane)


@pytest.fixture(scope="session")
def jvm_spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from {{ cookiecutter.package_name }}.runtime import start_jvm

    spark = start_jvm(tmp_path_factory.mktemp("jvm"), delta=False)
    yield spark
    spark.stop()


@pytest.fixture(scope="session")
def sail_spark() -> Iterator[object]:
    from {{ cookiecutter.package_name }}.runtime import start_sail, stop_engine

    spark, server = start_sail()
    yield spark
    stop_engine(spark, server)


@pytest.fixture
def local_runtime(sail_spark: object, tmp_path: Path) -> Iterator[object]:
    from {{ cookiecutter.package_name }}.runtime import open_runtime

    with open_runtime("local", "dev", "unit_tests", "local", local_dir=tmp_path / ".local", spark=sail_spark) as rt:
        yield rt


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A scratch copy of the bundle files, for tests that break them on purpose."""
    target = tmp_path / "project"
    for name in ("databricks.yml", "resources", "notebooks", "conf"):
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target
