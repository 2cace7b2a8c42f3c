"""The run report: one static HTML page to open after a run, with no server and no network.

It reads what the pipeline already records: the latest run (``pipeline_runs``), PSI and labelled
performance over scored periods (``drift_metrics``), the registered versions with their metrics,
aliases and alias history (the MLflow registry), quarantine reasons (the sources' quarantine tables
and ``ingest_metrics``), the data expectations and the model checks with the fairness figures
(``validation_results``), and the model inventory when that table exists.  Charts are matplotlib
SVG inlined in the page, so the file is self-contained: it can be mailed, attached to a ticket or
kept next to the run, and renders the same offline.  ``run all`` writes it at the end of every run
(on the run's engine, while its runtime is open); ``python -m PACKAGE report`` writes it on demand.

Reading is split from rendering: :func:`collect` queries the tables into plain :class:`Report`
data, :func:`render_html` turns that into the page and escapes every text it did not make itself.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Window
from pyspark.sql import functions as F

from ..config import load_project
from ..contract import load_contracts
from ..data.quality import FAILED
from ..ml.metrics import HIGHER_IS_BETTER, MAIN_METRIC
from ..ml.registry import mlflow_client
from ..ml.reports import pyplot
from ..names import (
    BATCH,
    DRIFT_TABLE,
    INGEST_METRICS_TABLE,
    INVENTORY_TABLE,
    LANDING_VOLUME,
    PACKAGE,
    RUNS_TABLE,
    VALIDATION_RESULTS_TABLE,
)
from ..runtime import LocalRuntime, Runtime

REPORT_FILE = "run_report.html"
# Bounds that keep the page readable and its queries cheap as history grows.
RECENT_RUNS = 10
MAX_PERIODS = 52
TOP_PSI_COLUMNS = 8
MAX_VERSIONS = 20
MAX_BATCHES = 20
MAX_CELL = 160


@dataclass
class Table:
    """A table of the page: ``id`` for readers and tests, and what to say when it has no rows."""

    id: str
    caption: str
    columns: list[str]
    rows: list[list[Any]]
    empty: str


@dataclass
class Chart:
    """An inline SVG chart (markup made by :func:`svg_chart`), or the reason there is none."""

    id: str
    title: str
    svg: str | None
    empty: str = ""


@dataclass
class Section:
    id: str
    title: str
    note: str
    parts: list[Table | Chart] = field(default_factory=list)


@dataclass
class Report:
    title: str
    subtitle: str
    glance: list[tuple[str, str]]
    sections: list[Section]
    generated_at: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))


# --- rendering ---------------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
header{background:#17324d;color:#fff;padding:16px 28px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;opacity:.85}nav{padding:8px 28px;background:#e8eef4}nav a{margin-right:16px;color:#17324d}
main{padding:8px 28px 40px;max-width:1280px}section{margin-top:28px}h2{border-bottom:2px solid #17324d;padding-bottom:4px}
p.note{color:#555;margin-top:0}p.empty{color:#8a5300;background:#fff6e5;padding:8px 12px;border-left:4px solid #e0a030}
div.scroll{overflow-x:auto;max-width:100%}
table.report-table{border-collapse:collapse;margin:8px 0 20px;font-size:13px;background:#fff}
table.report-table caption{text-align:left;font-weight:600;padding:4px 0}
table.report-table th,table.report-table td{border:1px solid #d5dbe1;padding:4px 8px;text-align:left;vertical-align:top;max-width:32em}
table.report-table th{background:#eef2f6}td.bad{color:#b00020;font-weight:600}td.good{color:#1b6e2a}
figure{margin:8px 0 20px;background:#fff;border:1px solid #d5dbe1;padding:8px;display:inline-block;max-width:100%}
figure svg{max-width:100%;height:auto}figcaption{font-size:13px;color:#444}
dl.glance{display:grid;grid-template-columns:max-content auto;gap:4px 16px;background:#fff;padding:12px;border:1px solid #d5dbe1}
dl.glance dt{font-weight:600}dl.glance dd{margin:0}
"""
BAD_WORDS = {"failed", "FAILED", "breached", "quarantined"}
GOOD_WORDS = {"succeeded", "passed", "ok"}


def _text(value: Any) -> str:
    """A cell's whole text: numbers rounded, times to the second, nothing for missing values, arrays
    and maps (as Spark returns them) as ``a, b`` and ``key=value`` lists."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        value = list(value.items())
    if isinstance(value, list | tuple):
        pairs = bool(value) and all(isinstance(v, list | tuple) and len(v) == 2 for v in value)
        return ", ".join(f"{v[0]}={_text(v[1])}" if pairs else _text(v) for v in value)
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float):  # counts read back with a missing value in their column are floats
        return f"{value:.0f}" if value.is_integer() else f"{value:.4g}"
    if isinstance(value, pd.Timestamp | datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _cell(value: Any) -> str:
    """A table cell; a long text is cut, whole in the cell's tooltip."""
    text = _text(value)
    kind = " class=\"bad\"" if text in BAD_WORDS else " class=\"good\"" if text in GOOD_WORDS else ""
    if len(text) > MAX_CELL:
        return f"<td{kind} title=\"{html.escape(text)}\">{html.escape(text[:MAX_CELL - 1])}…</td>"
    return f"<td{kind}>{html.escape(text)}</td>"


def render_table(table: Table) -> str:
    if not table.rows:
        return (f'<p class="empty" id="{html.escape(table.id)}-empty" data-table="{html.escape(table.id)}">'
                f"{html.escape(table.caption)}: nothing yet. {html.escape(table.empty)}</p>")
    head = "".join(f"<th scope=\"col\">{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table.rows)
    return (f'<div class="scroll"><table id="{html.escape(table.id)}" class="report-table"><caption>'
            f"{html.escape(table.caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def render_chart(chart: Chart) -> str:
    if chart.svg is None:
        return (f'<p class="empty" id="{html.escape(chart.id)}-empty">{html.escape(chart.title)}: nothing yet. '
                f"{html.escape(chart.empty)}</p>")
    return f'<figure>{chart.svg}<figcaption>{html.escape(chart.title)}</figcaption></figure>'


def render_html(report: Report) -> str:
    """The whole page: inline CSS and SVG only, no script, nothing fetched."""
    nav = "".join(f'<a href="#{html.escape(s.id)}">{html.escape(s.title)}</a>' for s in report.sections)
    glance = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in report.glance)
    sections = []
    for section in report.sections:
        parts = "".join(render_table(p) if isinstance(p, Table) else render_chart(p) for p in section.parts)
        sections.append(f'<section id="{html.escape(section.id)}"><h2>{html.escape(section.title)}</h2>'
                        f'<p class="note">{html.escape(section.note)}</p>{parts}</section>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            # Nothing may be fetched: the page is one file, opened from disk or an attachment.
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\">"
            f"<title>{html.escape(report.title)}</title><style>{STYLE}</style></head><body>"
            f"<header><h1>{html.escape(report.title)}</h1><p>{html.escape(report.subtitle)} · generated "
            f"{html.escape(report.generated_at)}</p></header><nav>{nav}</nav><main>"
            f'<section id="glance"><h2>At a glance</h2><dl class="glance">{glance}</dl></section>'
            f"{''.join(sections)}</main></body></html>\n")


# --- charts ------------------------------------------------------------------------------------


def _plain(text: Any) -> str:
    """A label matplotlib shows as written (a ``$`` would start mathtext)."""
    return str(text).replace("$", r"\$")


def svg_chart(fig: Any, chart_id: str, title: str) -> str:
    """``fig`` as inline SVG markup with ``chart_id``, a ``<title>`` and ids of its own: matplotlib
    numbers the elements of every figure alike (``figure_1``), and one page holds several."""
    plt = pyplot()
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none"}):  # text stays text: smaller, selectable, searchable
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = svg.replace(' id="', f' id="{chart_id}-').replace('href="#', f'href="#{chart_id}-')
    svg = svg.replace("url(#", f"url(#{chart_id}-")
    end = svg.index(">")
    label = html.escape(title)
    return (f'{svg[:end]} id="{chart_id}" class="chart" role="img" aria-label="{label}">'
            f'<title id="{chart_id}-title">{label}</title>{svg[end + 1:]}')


def _period_axis(ax: Any, periods: Sequence[str]) -> None:
    ax.set_xticks(range(len(periods)), [_plain(p) for p in periods], rotation=45 if len(periods) > 6 else 0,
                  ha="right" if len(periods) > 6 else "center", fontsize=8)
    ax.set_xlim(-0.5, len(periods) - 0.5)


def bound_line(ax: Any, thresholds: pd.Series, labelled: bool = False) -> None:
    """The latest of ``thresholds`` (a bound, or the PSI threshold) as a dashed red line; none when unset."""
    bound = thresholds.dropna()
    if not bound.empty:
        value = float(bound.iloc[-1])
        ax.axhline(value, color="#b00020", linestyle="--", linewidth=1,
                   **({"label": f"threshold {value:g}"} if labelled else {}))


def psi_over_time(psi: pd.DataFrame, chart_id: str = "chart-psi") -> Chart:
    """PSI per period of the columns that drifted most (latest value per period and column)."""
    title = f"PSI per scored period: the {TOP_PSI_COLUMNS} columns with the highest PSI"
    if psi.empty:
        return Chart(chart_id, title, None, "The monitor stage writes PSI once a period has been scored.")
    plt = pyplot()
    periods = sorted(psi["period"].unique())
    top = psi.groupby("name")["value"].max().sort_values(ascending=False).head(TOP_PSI_COLUMNS).index
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for column in top:
        series = psi[psi["name"] == column].set_index("period")["value"]
        ax.plot([periods.index(p) for p in series.index], series.to_numpy(), marker="o", label=_plain(column))
    bound_line(ax, psi["threshold"], labelled=True)
    _period_axis(ax, periods)
    ax.set(ylabel="PSI against the version's baseline", title=_plain(title))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    return Chart(chart_id, title, svg_chart(fig, chart_id, title))


def performance_over_time(perf: pd.DataFrame, chart_id: str = "chart-performance") -> Chart:
    """One panel per metric on the labelled rows of each period, the scoring version marked."""
    title = "Performance on labelled rows per scored period"
    if perf.empty:
        return Chart(chart_id, title, None, "Performance appears once scored rows have labels (the monitor stage).")
    plt = pyplot()
    periods = sorted(perf["period"].unique())
    metrics = list(dict.fromkeys(perf["name"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(min(4 * len(metrics), 14), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        rows = perf[perf["name"] == metric].sort_values("period")
        xs = [periods.index(p) for p in rows["period"]]
        ax.plot(xs, rows["value"].to_numpy(), marker="o", color="#17324d")
        for x, y, version in zip(xs, rows["value"], rows["model_version"], strict=True):
            ax.annotate(f"v{version}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        bound_line(ax, rows["threshold"])
        _period_axis(ax, periods)
        ax.set_title(_plain(metric), fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return Chart(chart_id, title, svg_chart(fig, chart_id, title))


def versions_chart(versions: pd.DataFrame, metric: str, champion: str | None,
                   chart_id: str = "chart-versions") -> Chart:
    title = f"Validation {metric} of each registered version"
    column = f"metric_{metric}"
    if versions.empty or column not in versions or versions[column].isna().all():
        return Chart(chart_id, title, None, "No registered version has this metric yet (the train stage logs it).")
    plt = pyplot()
    shown = versions.dropna(subset=[column]).sort_values("version", key=lambda s: s.astype(int))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(shown) + 2), 3.2))
    colours = ["#1b6e2a" if str(v) == champion else "#7a8fa6" for v in shown["version"]]
    ax.bar([f"v{v}" for v in shown["version"]], shown[column].astype(float), color=colours)
    ax.set(title=_plain(f"{metric} per version" + (f" (green: @champion v{champion})" if champion else "")),
           ylabel=_plain(metric))
    fig.tight_layout()
    return Chart(chart_id, title, svg_chart(fig, chart_id, title))


def quarantine_chart(reasons: pd.DataFrame, chart_id: str = "chart-quarantine") -> Chart:
    title = "Quarantined rows by failed expectation (all batches)"
    if reasons.empty:
        return Chart(chart_id, title, None, "No row has been quarantined.")
    plt = pyplot()
    shown = reasons.sort_values("rows")
    labels = [_plain(f"{s}: {r}" if reasons["source"].nunique() > 1 else r)
              for s, r in zip(shown["source"], shown["reason"], strict=True)]
    fig, ax = plt.subplots(figsize=(8, max(2.4, 0.35 * len(shown) + 1)))
    ax.barh(labels, shown["rows"].astype(int), color="#e0a030")
    ax.set(title=_plain(title), xlabel="rows")
    fig.tight_layout()
    return Chart(chart_id, title, svg_chart(fig, chart_id, title))


# --- reading -----------------------------------------------------------------------------------


def _frame(rows: Iterable[Any], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([list(r) for r in rows], columns=columns)


def latest_runs(rt: Runtime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recent runs (one row each) and the stages of the latest one."""
    if not rt.exists(RUNS_TABLE):
        return pd.DataFrame(), pd.DataFrame()
    runs = rt.read(RUNS_TABLE)
    recent = (runs.groupBy("run_id", "target")
              .agg(F.min("started_at").alias("started_at"), F.count("*").alias("stages"),
                   F.sum(F.when(F.col("status") != "succeeded", 1).otherwise(0)).alias("failed"),
                   F.sum("seconds").alias("seconds"))
              .orderBy(F.col("started_at").desc()).limit(RECENT_RUNS).toPandas())
    if recent.empty:
        return recent, pd.DataFrame()
    stages = runs.where(F.col("run_id") == str(recent["run_id"].iloc[0])).orderBy("started_at").toPandas()
    return recent, stages


def drift_history(rt: Runtime, model: str) -> pd.DataFrame:
    """The latest value of each PSI and performance figure per period (a period scored again by a
    newer version shows that version's figures)."""
    if not rt.exists(DRIFT_TABLE):
        return pd.DataFrame(columns=["period", "kind", "name", "value", "threshold", "breached", "rows",
                                     "model_version"])
    metrics = rt.read(DRIFT_TABLE).where(F.col("model_name") == model)
    latest = Window.partitionBy("period", "kind", "name").orderBy(F.col("computed_at").desc())
    frame = (metrics.withColumn("_n", F.row_number().over(latest)).where(F.col("_n") == 1)
             .select("period", "kind", "name", "value", "threshold", "breached", "rows", "model_version").toPandas())
    keep = sorted(frame["period"].unique())[-MAX_PERIODS:]
    return frame[frame["period"].isin(keep)]


def validation_rows(rt: Runtime, model: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The model checks of every version, and each source's data expectations of its latest batch."""
    if not rt.exists(VALIDATION_RESULTS_TABLE):
        return pd.DataFrame(), pd.DataFrame()
    latest = Window.partitionBy("source")
    frame = (rt.read(VALIDATION_RESULTS_TABLE).withColumn("_last", F.max("batch_to").over(latest))
             .where((F.col("source") == model) | (F.col("batch_to") == F.col("_last")))
             .drop("_last").toPandas())
    is_model = frame["source"] == model
    return frame[is_model], frame[~is_model]


def quarantine_reasons(rt: Runtime, root: Path) -> pd.DataFrame:
    """Rows per failed expectation per source, in all batches and in the source's latest batch."""
    found = []
    for contract in load_contracts(root).values():
        if not rt.exists(contract.quarantine_table):
            continue
        counts = (rt.read(contract.quarantine_table).select(F.explode(FAILED).alias("reason"), BATCH)
                  .groupBy("reason", BATCH).count().toPandas())
        if counts.empty:
            continue
        last = counts[BATCH].max()
        totals = counts.groupby("reason")["count"].sum()
        in_last = counts[counts[BATCH] == last].set_index("reason")["count"]
        found += [(contract.name, reason, int(total), int(in_last.get(reason, 0)), int(last))
                  for reason, total in totals.sort_values(ascending=False).items()]
    return _frame(found, ["source", "reason", "rows", "rows_in_latest_batch", "latest_batch"])


def ingest_batches(rt: Runtime) -> pd.DataFrame:
    """The silver gate's accounting of the latest batches: raw, upserted, quarantined, rate and verdict."""
    if not rt.exists(INGEST_METRICS_TABLE):
        return pd.DataFrame()
    return rt.read(INGEST_METRICS_TABLE).orderBy(F.col("measured_at").desc()).limit(MAX_BATCHES).toPandas()


def registry_view(rt: Runtime, model: str) -> tuple[pd.DataFrame, dict[str, str], list[dict[str, Any]]]:
    """Registered versions (their ``metric_*`` tags, validation and approval), the aliases, and the
    alias audit trail.  A local project with no MLflow store yet has none: the store is not created."""
    if isinstance(rt, LocalRuntime) and not (rt.local_dir / "mlflow.db").is_file():
        return pd.DataFrame(), {}, []
    rt.configure_mlflow()
    client = mlflow_client()
    versions = client.search_model_versions(f"name = '{model}'")
    if not versions:
        return pd.DataFrame(), {}, []
    registered = client.get_registered_model(model)
    aliases = {alias: str(version) for alias, version in (registered.aliases or {}).items()}
    history = json.loads(registered.tags.get("alias_history") or "[]")
    rows = []
    for found in sorted(versions, key=lambda v: -int(v.version))[:MAX_VERSIONS]:
        # A search result's tags are not a mapping on every registry (Unity Catalog): read the version itself.
        version = client.get_model_version(model, str(found.version))
        tags = version.tags or {}
        rows.append({"version": str(version.version),
                     "aliases": ", ".join(sorted(a for a, v in aliases.items() if v == str(version.version))),
                     "registered": datetime.fromtimestamp(version.creation_timestamp / 1000, UTC).replace(tzinfo=None),
                     "validation": tags.get("validation_status", ""), "approval": tags.get("approval", ""),
                     "run_id": tags.get("pipeline_run_id", ""),
                     **{k: float(v) for k, v in tags.items() if k.startswith("metric_") and _number(v)}})
    return pd.DataFrame(rows), aliases, history if isinstance(history, list) else []


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def inventory(rt: Runtime) -> pd.DataFrame | None:
    """The model inventory table as it is, or None when no stage has written it yet."""
    if not rt.exists(INVENTORY_TABLE):
        return None
    table = rt.read(INVENTORY_TABLE)
    if "version" in table.columns:  # the newest versions first, however the column is typed
        table = table.orderBy(F.col("version").cast("bigint").desc_nulls_last())
    return table.limit(MAX_VERSIONS).toPandas()


# --- assembling --------------------------------------------------------------------------------


def _rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[list[Any]]:
    present = [c for c in columns if c in frame]
    return [[row[c] if c in present else None for c in columns] for row in frame.to_dict("records")]


def _tables_written(text: Any) -> tuple[int | None, str]:
    try:
        tables = json.loads(text or "[]")
    except (TypeError, ValueError):
        return None, ""
    described = "; ".join(f"{t['name'].rsplit('.', 1)[-1]}: {t['rows']} rows, v{t['version']}" for t in tables)
    return (sum(int(t["rows"]) for t in tables) if tables else None), described


def run_section(recent: pd.DataFrame, stages: pd.DataFrame) -> tuple[Section, list[tuple[str, str]]]:
    """Each section builder returns its section and its lines for "At a glance"."""
    glance = []
    rows = []
    for stage in stages.to_dict("records"):
        written, described = _tables_written(stage.get("tables"))
        rows.append([stage["stage"], stage["status"], stage["started_at"], stage["seconds"], written, described,
                     stage.get("error")])
    if not stages.empty:
        run = recent.iloc[0]
        status = "succeeded" if int(run["failed"]) == 0 else "failed"
        glance.append(("latest run", f"{run['run_id']} on {run['target']}: {status}, {len(stages)} stages in "
                                     f"{float(run['seconds']):.1f} s, started {_text(run['started_at'])}"))
    recent_rows = [[r["run_id"], r["target"], r["started_at"], r["stages"],
                    "succeeded" if int(r["failed"]) == 0 else "failed", r["seconds"]]
                   for r in recent.to_dict("records")]
    return Section("run", "Latest run", "Every stage of the most recent run, from the pipeline_runs audit table.", [
        Table("latest-run", "Stages of the latest run",
              ["stage", "status", "started", "seconds", "rows written", "tables (rows, Delta version)", "error"],
              rows, f"No run recorded yet. Fix: python -m {PACKAGE} run all --target local"),
        Table("recent-runs", f"The last {RECENT_RUNS} runs", ["run id", "target", "started", "stages", "status",
                                                              "seconds"], recent_rows, "No run recorded yet."),
    ]), glance


def drift_section(history: pd.DataFrame) -> tuple[Section, list[tuple[str, str]]]:
    psi = history[history["kind"] == "psi"]
    perf = history[history["kind"] == "performance"]
    glance = []
    latest_rows: list[list[Any]] = []
    if not psi.empty:
        last = max(psi["period"])
        latest = psi[psi["period"] == last].sort_values("value", ascending=False)
        breached = list(latest[latest["breached"].fillna(False).astype(bool)]["name"])
        glance.append(("drift", f"period {last}: " + (f"PSI above the threshold for {', '.join(breached)}" if breached
                                                       else "no column above the PSI threshold")))
        latest_rows = [[r["name"], r["value"], r["threshold"], "breached" if r["breached"] else "ok", r["rows"],
                        r["model_version"]] for r in latest.to_dict("records")]
    perf_rows = []
    if not perf.empty:
        wide = perf.pivot_table(index=["period", "model_version"], columns="name", values="value", aggfunc="last")
        metrics = list(dict.fromkeys(perf["name"]))
        labelled = perf.groupby(["period", "model_version"])["rows"].max()
        for (period, version), values in wide.sort_index(ascending=False).iterrows():
            perf_rows.append([period, version, labelled.get((period, version)), *[values.get(m) for m in metrics]])
        breached = sorted(set(perf[perf["breached"].fillna(False).astype(bool)]["name"]))
        glance.append(("performance", f"bounds breached: {', '.join(breached)}" if breached
                       else "no performance bound breached"))
    else:
        metrics = []
    return Section("drift", "Drift and performance over time",
                   "From the drift_metrics table the monitor stage writes for every scored period: PSI of each "
                   "input and of the score against the scoring version's training baseline, and metrics on the "
                   "rows whose label has arrived.", [
                       psi_over_time(psi),
                       Table("psi-latest", "PSI per column, latest period",
                             ["column", "PSI", "threshold", "status", "rows", "model version"], latest_rows,
                             "The monitor stage has not scored a period yet."),
                       performance_over_time(perf),
                       Table("performance", "Performance per period (labelled rows)",
                             ["period", "model version", "labelled rows", *metrics], perf_rows,
                             "No labelled scored rows yet."),
                   ]), glance


def models_section(versions: pd.DataFrame, aliases: dict[str, str], history: list[dict[str, Any]],
                   inventory_frame: pd.DataFrame | None, problem_type: str) -> tuple[Section, list[tuple[str, str]]]:
    main = MAIN_METRIC[problem_type]
    metric_columns = [f"metric_{m}" for m in HIGHER_IS_BETTER if not versions.empty and f"metric_{m}" in versions]
    rows = _rows(versions, ["version", "aliases", "registered", "validation", "approval", *metric_columns, "run_id"])
    glance = [("models", ", ".join(f"@{a}: v{v}" for a, v in sorted(aliases.items())) or "no alias set")] \
        if not versions.empty else []
    trail = [[h.get("when"), h.get("alias"), h.get("version"), h.get("from"), h.get("who"), h.get("why")]
             for h in reversed(history[-MAX_VERSIONS:]) if isinstance(h, dict)]
    parts: list[Table | Chart] = [
        versions_chart(versions, main, aliases.get("champion")),
        Table("model-versions", "Registered versions and their validation metrics",
              ["version", "aliases", "registered", "validation", "approval",
               *[c.removeprefix("metric_") for c in metric_columns], "pipeline run"], rows,
              "No model registered yet (the train stage registers one)."),
        Table("alias-history", "Alias changes (who, when, why)",
              ["when", "alias", "version", "previous version", "who", "why"], trail, "No alias has been set yet."),
    ]
    if inventory_frame is None:
        parts.append(Table("model-inventory", "Model inventory", [], [],
                           "No inventory yet: no stage has written the model_inventory table."))
    else:
        parts.append(Table("model-inventory", "Model inventory (model_inventory table)", list(inventory_frame.columns),
                           _rows(inventory_frame, list(inventory_frame.columns)),
                           "The model_inventory table has no rows."))
    return Section("models", "Model versions", "From the model registry: each version's metrics on its "
                   "validation period, its validation and approval, the aliases and their audit trail.", parts), glance


def _groups(examples: Any) -> dict[str, dict[str, Any]]:
    try:
        groups = json.loads(examples or "{}")
    except (TypeError, ValueError):
        return {}
    return groups if isinstance(groups, dict) else {}


def validation_section(model_checks: pd.DataFrame, data_checks: pd.DataFrame,
                       reasons: pd.DataFrame, batches: pd.DataFrame) -> tuple[Section, list[tuple[str, str]]]:
    glance = []
    check_rows: list[list[Any]] = []
    groups_of: dict[int, list[list[Any]]] = {}  # version -> its fairness checks' per-group figures
    if not model_checks.empty:
        ordered = model_checks.sort_values(["batch_to", "validated_at"], ascending=[False, True])
        newest = int(ordered["batch_to"].iloc[0])
        for row in ordered.to_dict("records"):
            kind = str(row["type"]).removeprefix("model_")
            result = "missing" if row.get("error") else "passed" if row["success"] else "FAILED"
            fairness = bool(row.get("column")) and str(row["expectation"]).startswith("fairness")
            check_rows.append([row["batch_to"], row["expectation"], "fairness" if fairness else kind, row.get("column"),
                               result])
            if fairness:
                groups_of.setdefault(int(row["batch_to"]), []).extend(
                    [row["batch_to"], row["column"], group, figures.get("rows"), figures.get(kind), kind]
                    for group, figures in _groups(row.get("examples")).items() if isinstance(figures, dict))
        failed = [r[1] for r in check_rows if r[0] == newest and r[4] != "passed"]
        glance.append(("validation", f"version {newest}: " + (f"{len(failed)} check(s) not passed: {'; '.join(failed)}"
                                                                if failed else "every check passed")))
    group_rows = next((groups_of[v] for v in sorted(groups_of, reverse=True) if groups_of[v]), [])
    data_rows = [[r["source"], f"{r['batch_from']}-{r['batch_to']}", r["expectation"], r.get("column"),
                  "passed" if r["success"] else "failed", r.get("unexpected_count"), r.get("element_count")]
                 for r in (data_checks.sort_values(["source", "success", "expectation"]).to_dict("records")
                           if not data_checks.empty else [])]
    reason_rows = _rows(reasons, ["source", "reason", "rows", "rows_in_latest_batch", "latest_batch"])
    if not reasons.empty:
        top = reasons.iloc[0]
        glance.append(("quarantine", f"{int(reasons['rows'].sum())} rows quarantined in all batches; most often "
                                     f"{top['reason']} ({int(top['rows'])})"))
    batch_rows = [[b["source"], f"{b['batch_from']}-{b['batch_to']}", b["raw_records"], b["silver_upserts"],
                   b["quarantined"], b["malformed"], b["duplicates_removed"], b["quarantine_rate"], b["threshold"],
                   b["gate"], b["measured_at"]] for b in batches.to_dict("records")]
    return Section("quality", "Data quality, validation and fairness",
                   "Rows the silver stage quarantined and why (the quarantine tables and ingest_metrics), the data "
                   "expectations of each source's latest batch, and the model checks of every validated version "
                   "with the per-group figures of the fairness checks (validation_results).", [
                       quarantine_chart(reasons),
                       Table("quarantine-reasons", "Quarantine reasons",
                             ["source", "failed expectation", "rows (all batches)", "rows (latest batch)",
                              "latest batch"], reason_rows, "No row has been quarantined."),
                       Table("ingest-batches", f"Ingest batches (latest {MAX_BATCHES})",
                             ["source", "batches", "raw records", "silver upserts", "quarantined", "malformed",
                              "duplicates removed", "quarantine rate", "threshold", "gate", "measured"], batch_rows,
                             "No batch has reached silver yet."),
                       Table("data-expectations", "Data expectations of the latest batch",
                             ["source", "batches", "expectation", "column", "result", "unexpected", "checked"],
                             data_rows, "No batch has been validated yet."),
                       Table("model-checks", "Model checks per version (validation gate)",
                             ["version", "check", "kind", "column", "result"], check_rows,
                             "No version has been validated yet (the validate stage writes these)."),
                       Table("fairness-groups", "Fairness: per-group figures of the newest version checked",
                             ["version", "sensitive column", "group", "rows", "value", "metric"], group_rows,
                             "No fairness check ran: set validation.fairness in conf/project.yml and mark a contract "
                             "column sensitive."),
                   ]), glance


def collect(rt: Runtime, root: Path, model_name: str | None = None) -> Report:
    """Everything the page shows, read from the tables and the registry of ``rt``."""
    project = load_project(root)
    model = rt.model_name(model_name or project.model_name)
    recent, stages = latest_runs(rt)
    run, glance = run_section(recent, stages)
    history = drift_history(rt, model)
    drift, more = drift_section(history)
    glance += more
    versions, aliases, trail = registry_view(rt, model)
    models, more = models_section(versions, aliases, trail, inventory(rt), project.problem_type)
    glance += more
    model_checks, data_checks = validation_rows(rt, model)
    quality, more = validation_section(model_checks, data_checks, quarantine_reasons(rt, root), ingest_batches(rt))
    glance += more
    return Report(f"Run report: {model}", f"target {rt.target} ({rt.platform}), {rt.catalog}.{rt.schema}",
                  glance or [("status", f"nothing has run yet. Fix: python -m {PACKAGE} run all --target local")],
                  [run, drift, models, quality])


def default_path(rt: Runtime) -> Path:
    """Next to the monitor stage's charts: the landing volume's reports folder."""
    return Path(rt.volume_path(LANDING_VOLUME, "reports", REPORT_FILE))


def write_report(rt: Runtime, root: Path, out: Path | None = None, model_name: str | None = None) -> Path:
    """Write the page (whole or not at all: a reader never sees half a file) and return its path."""
    path = Path(out) if out is not None else default_path(rt)
    page = render_html(collect(rt, root, model_name))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(path)
    return path


def chart_ids(page: str) -> list[str]:
    """The ids of the charts in a page (what a browser test expects to find rendered)."""
    return re.findall(r'<svg[^>]* id="(chart-[a-z-]+)" class="chart"', page)
