"""Every run's figures in the Prometheus text exposition format, for the dashboards and alerts
people look at: stage durations and status, rows in, out and quarantined per ingest batch, the
quarantine rate, PSI, the model's metrics and the version ``@champion`` serves.

They are collected in a ``prometheus_client`` registry (never formatted by hand) and written as a
textfile for node_exporter's textfile collector, atomically (``write_to_textfile`` writes a
temporary file and renames it), then pushed to a Pushgateway when ``metrics`` in conf/project.yml
names one.  One file, and one Pushgateway group, per target and stage selection (``run all``,
``run score``, ...): on Databricks each job task runs its own selection, and none overwrites
another's figures.  Exporting never fails a run: what went wrong is reported in the run summary.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Enum, Gauge, Info, push_to_gateway, write_to_textfile
from pyspark.sql import functions as F

from ..config import METRICS, MetricsConfig
from ..names import DRIFT_TABLE, INGEST_METRICS_TABLE, PACKAGE
from ..runtime import Runtime
from .registry import mlflow_client

NAMESPACE = "mlops"
# Labels every figure carries: a file per target and selection must never repeat another's series.
RUN_LABELS = ("project", "target", "selection")
STAGE_STATES = ("succeeded", "skipped", "failed")
PUSH_TIMEOUT_SECONDS = 10.0


class StageFigures(Protocol):
    """What the runner knows of a stage that ran (``pipeline.StageResult``)."""

    name: str
    status: str
    seconds: float
    details: dict[str, object]


@dataclass
class RunFigures:
    """One run as the exporter sees it."""

    run_id: str
    # The stages the run was asked for: ``all``, or the names given (``ingest``, ``score``), joined by ``+``.
    selection: str
    stages: Sequence[StageFigures]
    # When the run began (Unix time), for its wall-clock duration.
    started: float
    model_name: str
    problem_type: str
    # A stage of the run used the model registry: report the aliases and their versions' metrics.
    registry: bool = False


@dataclass
class Exported:
    """Where the figures went: the textfile, the push (None: no Pushgateway), and what was left out."""

    file: str | None = None
    push: str | None = None
    error: str | None = None
    left_out: list[str] = field(default_factory=list)


class Figures:
    """The registry of one run, with every family labelled by project, target and selection."""

    def __init__(self, rt: Runtime, run: RunFigures) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.base = {"project": PACKAGE, "target": rt.target, "selection": run.selection}
        self._families: dict[str, Any] = {}

    def gauge(self, name: str, doc: str, value: float, **labels: object) -> None:
        """Set ``<namespace>_<name>`` for ``labels`` (the family is declared on first use)."""
        family = self._family(Gauge, name, doc, labels)
        family.labels(**self.base, **{k: str(v) for k, v in labels.items()}).set(float(value))

    def _family(self, kind: Callable[..., Any], name: str, doc: str, labels: dict[str, object],
                **options: Any) -> Any:
        full = f"{NAMESPACE}_{name}"
        if full not in self._families:
            self._families[full] = kind(full, doc, [*RUN_LABELS, *labels], registry=self.registry, **options)
        return self._families[full]

    def info(self, name: str, doc: str, values: dict[str, str]) -> None:
        """``<namespace>_<name>_info``: text that labels the run (its id), value 1."""
        self._family(Info, name, doc, {}).labels(**self.base).info(values)

    def state(self, name: str, doc: str, state: str, **labels: object) -> None:
        """A state set: one sample per state in ``STAGE_STATES``, 1 for the current one."""
        family = self._family(Enum, name, doc, labels, states=list(STAGE_STATES))
        family.labels(**self.base, **{k: str(v) for k, v in labels.items()}).state(state)


def stage_state(stage: StageFigures) -> str:
    """succeeded, failed, or skipped: succeeded without doing its work (no retraining, nothing new)."""
    if stage.status != "succeeded":
        return "failed"
    return "skipped" if "skipped" in stage.details else "succeeded"


def run_figures(figures: Figures, rt: Runtime, run: RunFigures) -> None:
    """The run and each stage: what alerts on a failed, slow or stale pipeline need."""
    ended = time.time()
    figures.info("run", "The latest run of this selection: its id and where it ran.",
                 {"run_id": run.run_id, "platform": rt.platform, "catalog": rt.catalog, "schema": rt.schema})
    figures.gauge("run_success", "1 if every stage of the run succeeded, else 0.",
                  all(s.status == "succeeded" for s in run.stages))
    figures.gauge("run_timestamp_seconds", "When the run ended (Unix time): alert when it grows stale.", ended)
    figures.gauge("run_duration_seconds", "Wall-clock time of the run, configuration checks included.",
                  ended - run.started)
    for stage in run.stages:
        figures.gauge("stage_duration_seconds", "Time the stage took in the latest run.", stage.seconds,
                      stage=stage.name)
        figures.state("stage_status", "How the stage ended in the latest run.", stage_state(stage), stage=stage.name)


def bronze_figures(figures: Figures, details: dict[str, object]) -> None:
    """Landing files per source from the bronze stage's details: an unreadable file stops no batch, so it
    needs a figure of its own to be noticed."""
    for source, found in details.items():
        if isinstance(found, dict) and "new_files" in found:
            counts = {"ingested": found["new_files"], "unreadable": len(found.get("unreadable_files") or {}),
                      "changed": len(found.get("changed_files") or [])}
            for status, count in counts.items():
                figures.gauge("bronze_files", "Landing files bronze found new in the run, by what became of them.",
                              float(count), source=source, status=status)


def ingest_figures(figures: Figures, rt: Runtime, run_id: str) -> None:
    """Per silver batch of the run, from ``ingest_metrics`` (failed batches included: the gate
    records their figures before it stops the stage)."""
    if not rt.exists(INGEST_METRICS_TABLE):
        return
    for row in rt.read(INGEST_METRICS_TABLE).where(F.col("run_id") == run_id).collect():
        first, last = row["batch_from"], row["batch_to"]
        batch = str(last) if first == last else f"{first}-{last}"
        where = {"source": row["source"], "batch": batch}
        for name, column, doc in (
                ("ingest_rows_in", "raw_records", "Records of the bronze batch that silver read."),
                ("ingest_rows_out", "silver_upserts", "Rows the batch upserted into silver (one per primary key)."),
                ("ingest_rows_quarantined", "quarantined", "Records of the batch that failed an expectation."),
                ("ingest_rows_malformed", "malformed", "Records of the batch that could not be parsed."),
                ("ingest_rows_duplicates", "duplicates_removed", "Valid records dropped as duplicates of a key.")):
            figures.gauge(name, doc, float(row[column] or 0), **where)
        figures.gauge("ingest_quarantine_rate", "Share of the batch's records quarantined or malformed.",
                      float(row["quarantine_rate"] or 0.0), **where)
        figures.gauge("ingest_quarantine_threshold", "The contract's quarantine_threshold for the batch.",
                      float(row["threshold"] or 0.0), **where)
        figures.gauge("ingest_gate_passed", "1 if the batch passed the silver gate, else 0.", row["gate"] == "passed",
                      **where)


def monitor_figures(figures: Figures, rt: Runtime, run_id: str) -> None:
    """PSI per column and performance of the period the run monitored, from ``drift_metrics``."""
    if not rt.exists(DRIFT_TABLE):
        return
    rows = rt.read(DRIFT_TABLE).where(F.col("run_id") == run_id).collect()
    highest: dict[tuple[str, str], float] = {}
    drifted: dict[tuple[str, str], bool] = {}
    for row in rows:
        key = (row["model_name"], row["model_version"])
        where = {"model": key[0], "version": key[1]}
        if row["kind"] == "psi":
            figures.gauge("monitor_psi", "PSI of an input or the score against the version's training baseline.",
                          row["value"], **where, column=row["name"])
            highest[key] = max(highest.get(key, 0.0), float(row["value"]))
            drifted[key] = drifted.get(key, False) or bool(row["breached"])
        elif row["kind"] == "performance" and row["value"] is not None:
            figures.gauge("monitor_performance", "A metric on the monitored period's labelled rows.", row["value"],
                          **where, metric=row["name"])
    for (model, version), value in highest.items():
        figures.gauge("monitor_psi_max", "The highest PSI of the monitored period (monitoring.psi_threshold alerts).",
                      value, model=model, version=version)
        figures.gauge("monitor_drift_detected", "1 if a column's PSI reached monitoring.psi_threshold, else 0.",
                      drifted[(model, version)], model=model, version=version)


def model_figures(figures: Figures, run: RunFigures) -> None:
    """The aliases and the metrics of their versions and of the version this run trained or validated."""
    client = mlflow_client()
    try:
        aliases = {str(a): str(v) for a, v in client.get_registered_model(run.model_name).aliases.items()}
    except Exception:  # MLflow raises RestException / MlflowException for a model not registered yet
        return
    for alias, version in sorted(aliases.items()):
        figures.gauge("model_alias_version", "The version an alias points at; alias=champion is the served one.",
                      float(version), model=run.model_name, alias=alias)
    mine = {str(s.details["version"]) for s in run.stages
            if s.name in ("train", "validate") and s.details.get("version") is not None}
    wanted = set(METRICS[run.problem_type])
    for version in sorted({*aliases.values(), *mine}, key=int):
        registered = client.get_model_version(run.model_name, version)
        logged = client.get_run(registered.run_id).data.metrics
        for metric in sorted(wanted & set(logged)):
            figures.gauge("model_metric", "A metric the version's training run logged on its holdout.",
                          logged[metric], model=run.model_name, version=version, metric=metric)
        status = registered.tags.get("validation_status")
        if status in ("passed", "failed"):
            figures.gauge("model_validation_passed", "1 if the version passed the validation gate, 0 if it failed.",
                          status == "passed", model=run.model_name, version=version)


def collect(rt: Runtime, run: RunFigures) -> tuple[CollectorRegistry, list[str]]:
    """The run's registry, and the parts left out because reading them failed (named with the error)."""
    figures = Figures(rt, run)
    run_figures(figures, rt, run)
    ran = {s.name: s for s in run.stages}
    parts: dict[str, Callable[[], None]] = {}
    if "bronze" in ran:
        parts["bronze files"] = lambda: bronze_figures(figures, ran["bronze"].details)
    if "silver" in ran:
        parts[INGEST_METRICS_TABLE] = lambda: ingest_figures(figures, rt, run.run_id)
    if "monitor" in ran:
        parts[DRIFT_TABLE] = lambda: monitor_figures(figures, rt, run.run_id)
    if run.registry:
        parts["model registry"] = lambda: model_figures(figures, run)
    left_out = []
    for part, read in parts.items():
        try:
            read()
        except Exception as exc:  # a figure that cannot be read must not cost the others
            first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            left_out.append(f"{part} ({type(exc).__name__}: {first_line})")
    return figures.registry, left_out


def textfile_path(rt: Runtime, selection: str) -> Path:
    """``<metrics dir>/<package>_<target>_<selection>.prom`` (node_exporter reads ``*.prom``)."""
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{PACKAGE}_{rt.target}_{selection}")
    return Path(rt.metrics_dir()) / f"{name}.prom"


def shown(url: str) -> str:
    """The URL without credentials, for the summary (a secret's URL may carry a user and password)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


def pushgateway_url(rt: Runtime, settings: MetricsConfig) -> str:
    """``metrics.pushgateway_secret`` where the runtime has secret scopes, else ``metrics.pushgateway_url``."""
    if settings.pushgateway_secret is not None:
        secret = rt.secret(*settings.pushgateway_secret)
        if secret:
            return secret.strip()
    return settings.pushgateway_url


def push(rt: Runtime, settings: MetricsConfig, registry: CollectorRegistry, selection: str) -> str | None:
    """PUT the registry to the Pushgateway (it replaces this group's previous figures); a sentence
    saying what happened, or None when no Pushgateway is configured."""
    try:
        url = pushgateway_url(rt, settings)
    except Exception as exc:
        scope, key = settings.pushgateway_secret or ("", "")
        return (f"failed: cannot read the secret {scope}/{key} (metrics.pushgateway_secret): {type(exc).__name__}: "
                f"{exc}. Fix: create it (databricks secrets put-secret {scope} {key}) or grant the job's identity READ "
                "on the scope; the run itself is not failed")
    if not url:
        return None
    group = {"target": rt.target, "selection": selection}
    try:
        push_to_gateway(url, job=PACKAGE, registry=registry, grouping_key=group, timeout=PUSH_TIMEOUT_SECONDS)
    except Exception as exc:
        return (f"failed: {shown(url)}: {type(exc).__name__}: {exc}. Fix: check that the Pushgateway is reachable "
                "from here, or set metrics.pushgateway_url to \"\" in conf/project.yml; the run itself is not failed")
    return f"pushed to {shown(url)} (job {PACKAGE}, {json.dumps(group)})"


def export(rt: Runtime, run: RunFigures, settings: MetricsConfig) -> Exported:
    """Collect, write the textfile, push; never raises (the run's own result stands)."""
    result = Exported()
    try:
        registry, result.left_out = collect(rt, run)
        path = textfile_path(rt, run.selection)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), registry)
        result.file = str(path)
        result.push = push(rt, settings, registry, run.selection)
    except Exception as exc:  # the figures are a report on the run, never a reason to fail it
        result.error = f"{type(exc).__name__}: {exc}"
    if result.left_out:
        left = "figures left out: " + "; ".join(result.left_out)
        result.error = f"{result.error}; {left}" if result.error else left
    return result
