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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def scratch_root(target: Path) -> Path:
    """A scratch project root with the bundle, the shipped configuration and pins (a run reads all three)."""
    for name in ("conf", "requirements"):
        shutil.copytree(PROJECT / name, target / name)
    shutil.copy2(PROJECT / "databricks.yml", target / "databricks.yml")
    return target


@pytest.fixture(scope="session")
def make_root() -> Callable[[Path], Path]:
    return scratch_root


@pytest.fixture(scope="session")
def sample_lake(sail_spark: Any) -> Callable[..., Any]:
    """Open a runtime on a fresh local dir, write the project's sample data and run ``stages``."""
    from {{ cookiecutter.package_name }} import pipeline
    from {{ cookiecutter.package_name }}.config import load_project
    from {{ cookiecutter.package_name }}.contract import load_contracts
    from {{ cookiecutter.package_name }}.runtime import open_runtime
    from {{ cookiecutter.package_name }}.tools.sample_data import generate

    @contextmanager
    def lake(base: Path, schema: str, stages: list[str], rows: int = 3000) -> Iterator[tuple[Any, Path, Any]]:
        root = scratch_root(base / "project")
        contract = load_contracts(root)[load_project(root).source]
        with open_runtime("local", "dev", schema, "local", local_dir=base / ".local", spark=sail_spark) as rt:
            generate(contract.name, Path(rt.landing_path(contract.path)), rows=rows)
            summary = pipeline.run_stages(rt, stages, log=lambda _: None, root=root)
            assert summary.ok, [s.error for s in summary.stages]
            yield rt, root, summary

    return lake


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
