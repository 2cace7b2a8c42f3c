"""Two test lanes, each with one session-scoped engine.

* ``jvm``: pure transformations on a real JVM SparkSession (no Delta needed).
* ``sail``: Delta round trips through the runtime adapter on the embedded Sail server.

pyspark.sql.functions build Spark Connect columns while ``SPARK_CONNECT_MODE_ENABLED`` is set and
classic ones otherwise; each test runs with the setting of its own lane (``spark_lane``), so both
engines live in one process and the lanes may run in any order, or spread over pytest-xdist
workers (``-n 2``: each worker runs its share of the JVM lane first).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parents[1]

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="mpl-"))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # A worker per core already: OpenMP's default of a thread per core in every worker oversubscribes
    # the cores and its threads spin at each barrier (scikit-learn's training took 8 s instead of 2 s).
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _lane(item: pytest.Item) -> int:
    if item.get_closest_marker("jvm"):
        return 0
    if item.get_closest_marker("sail"):
        return 2
    return 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The JVM lane first: under ``-n 2`` each worker starts its JVM before anything else runs.
    items.sort(key=_lane)


@pytest.fixture(autouse=True)
def spark_lane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("jvm"):
        monkeypatch.delenv("SPARK_CONNECT_MODE_ENABLED", raising=False)
    elif request.node.get_closest_marker("sail"):
        monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")


# Test frames are a few thousand rows: compiling generated code for each query costs more than it
# saves, and one shuffle partition is enough (about a sixth of the lane's time).  One task slot: a
# Python UDF then runs in one reused Python worker that imports MLflow once, not one per slot.
JVM_SMALL_DATA = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.shuffle.partitions": "1",
    "spark.master": "local[1]",
}


@pytest.fixture(scope="session")
def jvm_spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The JVM lane's one SparkSession; its classes come from a shared archive after the first run."""
    from {{ cookiecutter.package_name }}.runtime import ClassArchive, start_jvm

    archive = ClassArchive.in_cache(delta=False)
    with pytest.MonkeyPatch.context() as patch:  # a classic session, even after the Sail lane started
        patch.delenv("SPARK_CONNECT_MODE_ENABLED", raising=False)
        spark = start_jvm(tmp_path_factory.mktemp("jvm"), delta=False, extra=JVM_SMALL_DATA, class_archive=archive)
    yield spark
    spark.stop()
    archive.publish()


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


SAMPLE_ROWS = 3000
# The sample data through bronze, silver, gold and the feature table: ingested once per session.
MEDALLION = ["ingest", "features"]


@pytest.fixture(scope="session")
def sample_medallion(sail_spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local directory of a lake with the project's sample data ingested and featurised, built once;
    lakes that start from it copy it (Delta logs hold relative paths, landing keys are relative)."""
    from {{ cookiecutter.package_name }} import pipeline
    from {{ cookiecutter.package_name }}.config import load_project
    from {{ cookiecutter.package_name }}.contract import load_contracts
    from {{ cookiecutter.package_name }}.runtime import open_runtime
    from {{ cookiecutter.package_name }}.tools.sample_data import generate

    base = tmp_path_factory.mktemp("medallion")
    root = scratch_root(base / "project")
    contract = load_contracts(root)[load_project(root).source]
    with open_runtime("local", "dev", "lake", "local", local_dir=base / ".local", spark=sail_spark) as rt:
        generate(contract.name, Path(rt.landing_path(contract.path)), rows=SAMPLE_ROWS)
        summary = pipeline.run_stages(rt, MEDALLION, log=lambda _: None, root=root)
        assert summary.ok, [s.error for s in summary.stages]
    return base / ".local"


@pytest.fixture(scope="session")
def sample_lake(sail_spark: Any, sample_medallion: Path) -> Callable[..., Any]:
    """Open a runtime on a fresh local dir holding the project's sample data and run ``stages``.
    A lake whose stages start with ingest and features begins as a copy of the session's medallion
    and runs only the stages after them (its schema is then ``lake``)."""
    from {{ cookiecutter.package_name }} import pipeline
    from {{ cookiecutter.package_name }}.config import load_project
    from {{ cookiecutter.package_name }}.contract import load_contracts
    from {{ cookiecutter.package_name }}.runtime import open_runtime
    from {{ cookiecutter.package_name }}.tools.sample_data import generate

    @contextmanager
    def lake(base: Path, schema: str, stages: list[str], rows: int = SAMPLE_ROWS) -> Iterator[tuple[Any, Path, Any]]:
        root = scratch_root(base / "project")
        contract = load_contracts(root)[load_project(root).source]
        copied = stages[:len(MEDALLION)] == MEDALLION and rows == SAMPLE_ROWS
        if copied:
            shutil.copytree(sample_medallion, base / ".local", ignore=shutil.ignore_patterns("locks"))
            schema, stages = "lake", stages[len(MEDALLION):]
        with open_runtime("local", "dev", schema, "local", local_dir=base / ".local", spark=sail_spark) as rt:
            if not copied:
                generate(contract.name, Path(rt.landing_path(contract.path)), rows=rows)
            summary = pipeline.run_stages(rt, stages, log=lambda _: None, root=root) if stages else None
            assert summary is None or summary.ok, [s.error for s in summary.stages]
            yield rt, root, summary

    return lake


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """The command line in this process, as ``python -m PACKAGE ARGS`` from ``cwd``: the same
    ``main``, exit code and output, without a new interpreter importing everything again
    (tests/test_cli.py runs it once as a real subprocess)."""
    from {{ cookiecutter.package_name }}.cli import main

    def run(*args: str, cwd: Path = PROJECT) -> CliResult:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        with monkeypatch.context() as patch:  # the command starts and stops its own engine
            patch.delenv("SPARK_CONNECT_MODE_ENABLED", raising=False)
            try:
                code = main(list(args))
            except SystemExit as stop:  # argparse's usage errors
                code = stop.code if isinstance(stop.code, int) else 1
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run


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
