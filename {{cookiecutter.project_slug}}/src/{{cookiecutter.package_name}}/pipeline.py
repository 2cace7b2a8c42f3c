"""The stage registry and the runner behind ``python -m <package> run``.

A stage is a function ``(runtime, context) -> StageOutput``: the tables it wrote and
details for the summary.  The runner times each stage, records it in the ``pipeline_runs`` audit table (MERGE by run id and stage,
so a rerun with the same run id never duplicates), and returns a summary with row
counts and Delta versions of every table a stage wrote.
"""

from __future__ import annotations

import importlib
import json
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .config import ConfigError, project_root
from .runtime import Runtime
from .stage import RunContext, StageFailure, StageOutput, stderr
from .transforms import latest_per_key

RUNS_TABLE = "pipeline_runs"
VOLUME = "landing"
VOLUME_FOLDERS = ("raw", "checkpoints", "schemas")


def bootstrap(rt: Runtime, ctx: RunContext) -> StageOutput:
    """Check that the schema and the landing volume are usable, and create the volume's folders.

    On Databricks the bundle creates the schema and volume; this stage fails fast if the job's
    identity cannot see them.  Locally it creates the same layout under the local directory.
    """
    rt.ensure_schema()
    for folder in VOLUME_FOLDERS:
        Path(rt.volume_path(VOLUME, folder)).mkdir(parents=True, exist_ok=True)
    return StageOutput()


Stage = Callable[[Runtime, RunContext], StageOutput]


def _lazy(module: str, function: str) -> Stage:
    """A stage whose module is imported when it runs: the command line stays fast (MLflow and
    LightGBM load only for the stages that need them)."""

    def stage(rt: Runtime, ctx: RunContext) -> StageOutput:
        return getattr(importlib.import_module(f".{module}", __package__), function)(rt, ctx)

    stage.__name__ = function
    return stage


# Execution order of ``run all``.
STAGES: dict[str, Stage] = {
    "bootstrap": bootstrap,
    "bronze": _lazy("ingest", "bronze"),
    "silver": _lazy("ingest", "silver"),
    "gold": _lazy("ingest", "gold"),
    "features": _lazy("features", "build_features"),
    "check": _lazy("monitoring", "check"),
    "train": _lazy("training", "train"),
    "validate": _lazy("registry", "validate"),
    "promote": _lazy("registry", "promote_stage"),
    "score": _lazy("inference", "score"),
    "monitor": _lazy("monitoring", "monitor"),
}
# Names that stand for several stages.
GROUPS: dict[str, list[str]] = {
    "ingest": ["bronze", "silver", "gold"],
}


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


def run_stages(
    rt: Runtime,
    names: list[str],
    run_id: str | None = None,
    log: Callable[[str], None] = stderr,
    root: Path | None = None,
    experiment: str | None = None,
    model_name: str | None = None,
) -> RunSummary:
    """Run stages in order, stopping at the first failure, and record every attempt."""
    stages = resolve_stages(names)
    summary = RunSummary(run_id or uuid.uuid4().hex, rt.target, rt.platform, rt.catalog, rt.schema)
    ctx = RunContext(root=root or project_root(), run_id=summary.run_id, log=log, experiment=experiment,
                     model_name=model_name)
    started: dict[str, datetime] = {}
    for index, name in enumerate(stages, start=1):
        log(f"[{index}/{len(stages)}] {name} ...")
        started[name] = datetime.now(UTC).replace(tzinfo=None)
        t0 = time.perf_counter()
        try:
            output = STAGES[name](rt, ctx)
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
    record_runs(rt, summary, started)
    summary.audit = TableStat(rt.table(RUNS_TABLE), rt.row_count(RUNS_TABLE), rt.version(RUNS_TABLE))
    return summary
