"""The stage registry and the runner behind ``python -m <package> run``.

A stage is a function ``(runtime, context) -> StageOutput``: the tables it wrote and details
for the summary.  The runner builds the run context once (configuration, contracts, model
name), times each stage, records it in the ``pipeline_runs`` audit table (MERGE by run id and
stage, so a rerun with the same run id never duplicates), and returns a summary with row counts
and Delta versions of every table a stage wrote.  Every run also exports its figures in the
Prometheus format (``ml/observability.py``): the summary names the textfile and the push.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .config import ConfigError, load_project, project_root, target_config
from .context import RunContext, StageFailure, StageOutput, stderr
from .contract import load_contracts
from .data.gold import check_gold_expressions
from .data.transforms import latest_per_key
from .data.validation import import_great_expectations_in_background
from .ml.observability import RunFigures, export
from .names import RUNS_TABLE
from .runtime import Runtime

Stage = Callable[[Runtime, RunContext], StageOutput]
STAGES_DIR = Path(__file__).resolve().parent / "stages"


def declared_order(path: Path) -> dict[str, int]:
    """A stage module's ``ORDER = {"<stage>": <position>, ...}``, read from its source: importing
    every stage module to learn the order would load MLflow and pandas for every command."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["ORDER"]:
            order = ast.literal_eval(node.value)
            if isinstance(order, dict) and order and all(
                    isinstance(k, str) and isinstance(v, int) for k, v in order.items()):
                return order
    raise ValueError(f"{path}: a stage module declares its stages as " + "ORDER = {'<stage>': <position>}")


def discover_stages(folder: Path = STAGES_DIR) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Every stage in run order (name -> "module:function"), and the modules that hold several
    stages (module name -> its stages, runnable by the module's name).  A module with one stage
    runs its ``run`` function; a module with several, the function named like each stage."""
    found: list[tuple[int, str, str]] = []
    groups: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        order = declared_order(path)
        for name, position in order.items():
            found.append((position, name, f"{path.stem}:{'run' if len(order) == 1 else name}"))
        if len(order) > 1:
            groups[path.stem] = sorted(order, key=order.__getitem__)
    names = [name for _, name, _ in found]
    positions = [position for position, _, _ in found]
    clashes = sorted({n for n in names if names.count(n) > 1} | {str(p) for p in positions if positions.count(p) > 1})
    if clashes:
        raise ValueError(f"{folder}: stage names or positions declared twice: {', '.join(clashes)}")
    return {name: target for _, name, target in sorted(found)}, groups


# Execution order of ``run all``: stage name -> "module:function" under ``stages/`` (or a function),
# and names that stand for several stages (e.g. ``ingest``: bronze, silver, gold).
STAGES: dict[str, str | Stage]
GROUPS: dict[str, list[str]]
STAGES, GROUPS = discover_stages()


def load_stage(name: str) -> Stage:
    """The stage function; its module is imported only when it runs, so the command line stays
    fast (MLflow, Great Expectations and the estimators load only for the stages that need them)."""
    target = STAGES[name]
    if callable(target):
        return target
    module, function = target.split(":")
    return getattr(importlib.import_module(f"{__package__}.stages.{module}"), function)


def stage_imports(name: str, *modules: str) -> bool:
    """Whether a stage's module imports one of ``modules`` (package modules, e.g. ``ml.registry``)."""
    target = STAGES[name]
    return not callable(target) and not imported_modules(STAGES_DIR / f"{target.split(':')[0]}.py").isdisjoint(modules)


def validates(name: str) -> bool:
    """Whether a stage's module imports the Great Expectations layer (``data.validation``)."""
    return stage_imports(name, "data.validation")


def preload_validation(stages: list[str]) -> threading.Thread | None:
    """Great Expectations takes seconds to import: when a stage will validate, it loads on a thread
    while the engine starts and the first stages wait on it (the thread, to join before exiting)."""
    return import_great_expectations_in_background() if any(validates(n) for n in stages) else None


@functools.cache
def imported_modules(path: Path) -> frozenset[str]:
    """The package modules a stage module imports (``from ..x import``), read from its source once per
    process: every run of a long-lived process (a notebook, the tests) asks again."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(node.module for node in tree.body
                     if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module)


@dataclass
class TableStat:
    name: str
    rows: int
    version: int | None


@dataclass
class StageResult:
    name: str
    status: str
    seconds: float
    tables: list[TableStat] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)
    error: str | None = None


@dataclass
class RunSummary:
    run_id: str
    target: str
    platform: str
    catalog: str
    schema: str
    stages: list[StageResult] = field(default_factory=list)
    audit: TableStat | None = None
    # The run's figures in the Prometheus text format (a textfile-collector file), and what became of
    # the Pushgateway push (None: none configured); a problem exporting them never fails the run.
    metrics_file: str | None = None
    metrics_push: str | None = None
    metrics_error: str | None = None

    @property
    def ok(self) -> bool:
        return all(stage.status == "succeeded" for stage in self.stages)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ok": self.ok}, indent=2)

    def to_text(self) -> str:
        lines = [f"run {self.run_id} on {self.target} ({self.platform}, {self.catalog}.{self.schema})"]
        for stage in self.stages:
            lines.append(f"  {stage.name:<14} {stage.status:<9} {stage.seconds:7.2f}s")
            lines.extend(f"      {t.name}: {t.rows} rows, Delta version {t.version}" for t in stage.tables)
            lines.extend(f"      {line}" for line in describe(stage.details))
            if stage.error:
                lines.append(f"      error: {stage.error}")
        if self.audit:
            lines.append(f"  audit: {self.audit.name}: {self.audit.rows} rows, Delta version {self.audit.version}")
        exported = {"metrics": self.metrics_file, "metrics push": self.metrics_push,
                    "metrics problem": self.metrics_error}
        lines.extend(f"  {label}: {value}" for label, value in exported.items() if value)
        lines.append("all stages succeeded" if self.ok else "FAILED")
        return "\n".join(lines)


def resolve_stages(names: list[str]) -> list[str]:
    """Expand ``all`` and reject unknown names with the list of known ones."""
    resolved: list[str] = []
    groups = {"all": list(STAGES), **GROUPS}
    for name in names:
        if name not in STAGES and name not in groups:
            known = ", ".join([*STAGES, *groups])
            raise ValueError(f"unknown stage {name!r}. Known stages: {known}")
        resolved.extend(s for s in groups.get(name, [name]) if s not in resolved)
    order = list(STAGES)
    return sorted(resolved, key=order.index)


def selection(names: list[str], stages: list[str]) -> str:
    """How the figures of a run are grouped: ``all``, or the names asked for (``ingest``, ``score``)."""
    return "all" if stages == list(STAGES) else "+".join(dict.fromkeys(names))


def record_runs(rt: Runtime, summary: RunSummary, started: dict[str, datetime]) -> None:
    """MERGE one audit row per stage into ``pipeline_runs``."""
    rows = [
        (
            summary.run_id,
            stage.name,
            summary.target,
            stage.status,
            started[stage.name],
            float(stage.seconds),
            stage.error,
            json.dumps([asdict(t) for t in stage.tables]),
        )
        for stage in summary.stages
    ]
    schema = (
        "run_id string, stage string, target string, status string, started_at timestamp, "
        "seconds double, error string, tables string"
    )
    frame = latest_per_key(rt.spark.createDataFrame(rows, schema), ["run_id", "stage"], ["started_at"])
    rt.merge(frame, RUNS_TABLE, ["run_id", "stage"])


def describe(details: dict[str, object]) -> list[str]:
    """Readable lines for a stage's details (one per source)."""
    lines = []
    for key, value in details.items():
        if isinstance(value, dict):
            lines.append(f"{key}: " + ", ".join(f"{k}={v}" for k, v in value.items()
                                                 if not isinstance(v, list | dict)))
        else:
            lines.append(f"{key}: {value}")
    return lines


def run_context(rt: Runtime, root: Path, run_id: str, log: Callable[[str], None] = stderr,
                experiment: str | None = None, model_name: str | None = None,
                retry_files: tuple[str, ...] = ()) -> RunContext:
    """Everything the stages share, read once: the project configuration, the contracts, the
    registered model name on this runtime, the experiment and the target's approval rule."""
    project = load_project(root)
    contracts = load_contracts(root)
    if project.source not in contracts:
        raise ConfigError(f"{root / 'conf' / 'project.yml'}: source is {project.source!r}, which no contract in "
                          f"conf/contracts/ names. Fix: use one of {', '.join(contracts)}")
    return RunContext(root=root, run_id=run_id, project=project, contracts=contracts,
                      model_name=rt.model_name(model_name or project.model_name),
                      experiment=experiment or project.experiment,
                      auto_approve=target_config(root, rt.target).auto_approve, log=log,
                      retry_files=tuple(retry_files))


def run_stages(
    rt: Runtime,
    names: list[str],
    run_id: str | None = None,
    log: Callable[[str], None] = stderr,
    root: Path | None = None,
    experiment: str | None = None,
    model_name: str | None = None,
    retry_files: tuple[str, ...] = (),
    before_stages: Callable[[RunContext], None] | None = None,
) -> RunSummary:
    """Run stages in order, stopping at the first failure, and record every attempt.  The
    configuration is checked first; ``before_stages`` then runs once the checks pass (the command
    line writes sample data there, so a configuration mistake costs no sample data)."""
    began = time.time()
    stages = resolve_stages(names)
    summary = RunSummary(run_id or uuid.uuid4().hex, rt.target, rt.platform, rt.catalog, rt.schema)
    ctx = run_context(rt, root or project_root(), summary.run_id, log, experiment, model_name, retry_files)
    for contract in ctx.contracts.values():  # before any stage: a bad expression must not follow a silver commit
        check_gold_expressions(rt.spark, contract)
    if before_stages is not None:
        before_stages(ctx)
    preload = preload_validation(stages)
    started: dict[str, datetime] = {}
    for index, name in enumerate(stages, start=1):
        log(f"[{index}/{len(stages)}] {name} ...")
        started[name] = datetime.now(UTC).replace(tzinfo=None)
        t0 = time.perf_counter()
        try:
            output = load_stage(name)(rt, ctx)
            stats = [TableStat(rt.table(t), rt.row_count(t), rt.version(t)) for t in output.tables]
            result = StageResult(name, "succeeded", time.perf_counter() - t0, stats, output.details)
        except (StageFailure, ConfigError) as exc:
            log(f"{name} failed: {exc}")
            result = StageResult(name, "failed", time.perf_counter() - t0, details=getattr(exc, "details", {}),
                                 error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            log(traceback.format_exc())
            result = StageResult(name, "failed", time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}")
        summary.stages.append(result)
        log(f"[{index}/{len(stages)}] {name} {result.status} in {result.seconds:.2f}s")
        if result.status != "succeeded":
            break
    if preload is not None:
        preload.join()  # never leave the interpreter mid-import
    record_runs(rt, summary, started)
    summary.audit = TableStat(rt.table(RUNS_TABLE), rt.row_count(RUNS_TABLE), rt.version(RUNS_TABLE))
    ran = [stage.name for stage in summary.stages]
    exported = export(rt, RunFigures(
        summary.run_id, selection(names, stages), summary.stages, began, ctx.model_name, ctx.project.problem_type,
        registry=any(stage_imports(name, "ml.registry", "ml.tracking") for name in ran)), ctx.project.metrics)
    summary.metrics_file, summary.metrics_push, summary.metrics_error = exported.file, exported.push, exported.error
    return summary
