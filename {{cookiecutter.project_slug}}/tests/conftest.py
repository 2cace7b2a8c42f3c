"""Two test lanes, each with one session-scoped engine.

* ``jvm``: pure transformations on a real JVM SparkSession (no Delta needed).
* ``sail``: Delta round trips through the runtime adapter on the embedded Sail server.

pyspark.sql.functions build Spark Connect columns while ``SPARK_CONNECT_MODE_ENABLED`` is set and
classic ones otherwise; each test runs with the setting of its own lane (``spark_lane``), so both
engines live in one process and the lanes may run in any order, or spread over pytest-xdist
workers (``-n 2``: the JVM lane on one worker, the sample lake's users on one, see
:class:`GroupScheduling`).
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

PROJECT = Path(__file__).resolve().parents[1]

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
if "MPLCONFIGDIR" not in os.environ:  # one per run: xdist's workers inherit the controller's
    os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="mpl-")
    atexit.register(shutil.rmtree, os.environ["MPLCONFIGDIR"], ignore_errors=True)
# Set when pytest has finished normally in this xdist worker (see ``end_worker_at_once``).
WORKER_FINISHED: list[bool] = []


def end_worker_at_once() -> None:
    """The last exit handler of an xdist worker whose tests all ran: the interpreter would spend about
    2 s freeing what the libraries built at import (Great Expectations alone 0.8 s), with nothing left
    to write, while the controller waits for it.  Streams and log handlers are flushed first."""
    if WORKER_FINISHED:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if os.environ.get("PYTEST_XDIST_WORKER"):
    # A worker per core already: OpenMP's default of a thread per core in every worker oversubscribes
    # the cores and its threads spin at each barrier (scikit-learn's training took 8 s instead of 2 s).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    atexit.register(end_worker_at_once)  # registered first, so it runs after every other handler
# The file in which xdist workers record the groups they are scheduled in (see GroupScheduling).
GROUPS = "XDIST_TEST_GROUPS_FILE"


def _lane(item: pytest.Item) -> int:
    if item.get_closest_marker("jvm"):
        return 0
    if item.get_closest_marker("sail"):
        return 1
    return 2


def _module_fixture_users(items: list[pytest.Item]) -> set[pytest.Item]:
    """Tests that use a module-scoped fixture of their own module (a lake built, a model trained)."""
    users = set()
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        for fixturedefs in info.name2fixturedefs.values() if info else ():
            if any(d.scope == "module" and d.baseid and item.nodeid.startswith(d.baseid) for d in fixturedefs):
                users.add(item)
    return users


# Session fixtures that cost seconds: the tests that use one form one unit, so one worker builds it.
ONCE_PER_RUN = {"sample_medallion": "medallion"}


def scheduling_groups(items: list[pytest.Item]) -> dict[str, str]:
    """The unit of scheduling of each test: the JVM lane is one group, so one worker starts a JVM; a
    module whose tests share a module fixture is one group (with the JVM lane if it has JVM tests),
    so the fixture is built once; the users of an ``ONCE_PER_RUN`` fixture are one group (with their
    modules' groups whole), so it is built once too; every other test is a unit of its own."""
    users = _module_fixture_users(items)
    jvm_modules = {item.module for item in items if _lane(item) == 0}
    groups = {}
    for item in items:
        if _lane(item) == 0 or (item in users and item.module in jvm_modules):
            groups[item.nodeid] = "jvm"
        elif item in users:
            groups[item.nodeid] = item.module.__name__
    merged = {}  # a module group or a lone test -> the once-per-run fixture it needs
    for item in items:
        for fixture, group in ONCE_PER_RUN.items():
            if fixture in item.fixturenames and groups.get(item.nodeid) != "jvm":
                merged[groups.get(item.nodeid, item.nodeid)] = group
    for item in items:
        unit = groups.get(item.nodeid, item.nodeid)
        if unit in merged:
            groups[item.nodeid] = merged[unit]
    return groups


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The order work is handed out in: the JVM lane, the groups (the largest first), the rest of the
    # Sail lane, then the cheap tests without an engine, which even out the workers at the end.
    groups = scheduling_groups(items)
    sizes = collections.Counter(groups.values())
    items.sort(key=lambda item: (_lane(item), -sizes[groups[item.nodeid]]) if item.nodeid in groups
               else (_lane(item), 0))
    if GROUPS in os.environ and os.environ.get("PYTEST_XDIST_WORKER"):
        path = Path(os.environ[GROUPS])
        partial = path.with_name(f"{path.name}.{os.environ['PYTEST_XDIST_WORKER']}")
        partial.write_text(json.dumps(groups))
        partial.replace(path)  # both workers write the same groups; a reader sees one whole file


def pytest_configure(config: pytest.Config) -> None:
    # The controller of ``-n 2``; xdist's options are absent altogether under ``-p no:xdist``.
    if config.getoption("dist", None) == "load" and config.getoption("tx", None):
        os.environ[GROUPS] = str(Path(tempfile.mkdtemp(prefix="xdist-groups-")) / "groups.json")


def pytest_unconfigure(config: pytest.Config) -> None:
    if GROUPS in os.environ and not os.environ.get("PYTEST_XDIST_WORKER"):
        shutil.rmtree(Path(os.environ.pop(GROUPS)).parent, ignore_errors=True)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        WORKER_FINISHED.append(True)


class GroupScheduling(LoadScopeScheduling):
    """xdist's ``loadscope`` with :func:`scheduling_groups` as the scopes, read from the file the workers
    write as they collect (the controller collects nothing).  Groups go out first, the largest first,
    then single tests in collection order, each to whichever worker runs short of work.  (xdist's own
    ``loadgroup`` renames each grouped test's node id, which pytest 9 no longer lets a plugin do.)"""

    _groups: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self._groups is None:
            self._groups = json.loads(Path(os.environ[GROUPS]).read_text())
        return self._groups.get(nodeid, nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    """``-n 2`` (xdist's default ``load``) schedules by :func:`scheduling_groups`; another ``--dist`` is kept."""
    return GroupScheduling(config, log) if GROUPS in os.environ else None


@pytest.fixture(autouse=True)
def spark_lane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("jvm"):
        monkeypatch.delenv("SPARK_CONNECT_MODE_ENABLED", raising=False)
    elif request.node.get_closest_marker("sail"):
        # Started before the patch, the engine's own setting outlives this test: the module fixtures
        # of a Sail module set up before the next test's patch then run in Spark Connect mode too.
        request.getfixturevalue("sail_spark")
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
def jvm_class_archive() -> object:
    """The cached archive of the JVM lane's classes (mapped, or recorded by this run's JVM)."""
    from {{ cookiecutter.package_name }}.runtime import ClassArchive

    return ClassArchive.in_cache(delta=False)


@pytest.fixture(scope="session")
def jvm_spark(tmp_path_factory: pytest.TempPathFactory, jvm_class_archive: Any) -> Iterator[object]:
    """The JVM lane's one SparkSession; its classes come from a shared archive after the first run."""
    from {{ cookiecutter.package_name }}.runtime import start_jvm

    archive = jvm_class_archive
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


# The local loop after the medallion: a model trained, validated, promoted, scoring and monitored.
LOOP = ["check", "train", "validate", "promote", "score", "monitor"]


@pytest.fixture(scope="session")
def looped(sample_lake: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path, Any]]:
    """A lake run through monitor once per session: the inference tests go on from it and the run
    report reads it (building it again per module would cost seconds each)."""
    with sample_lake(tmp_path_factory.mktemp("inference"), "inference_tests", ["ingest", "features", *LOOP]) as lake:
        yield lake


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
