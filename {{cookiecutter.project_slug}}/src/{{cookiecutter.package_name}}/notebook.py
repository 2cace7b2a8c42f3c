"""The bridge from a Databricks notebook's widgets to the command line.

Every notebook is: install requirements, put ``src`` on the path, then one call::

    run_stage(dbutils, "bootstrap")

Job parameters arrive as widgets of the same name; an empty widget falls back to the
target's settings in databricks.yml.
"""

from __future__ import annotations

from typing import Any

from .cli import build_parser, run_summary
from .config import project_root

WIDGETS = ("target", "catalog", "schema", "run_id", "experiment", "model_name")


def notebook_args(widget_values: dict[str, str], stages: tuple[str, ...]) -> list[str]:
    args = ["run", *stages, "--target", widget_values.get("target") or "dev"]
    for name in ("catalog", "schema", "run_id", "experiment", "model_name"):
        value = widget_values.get(name)
        if value:
            args += [f"--{name.replace('_', '-')}", value]
    return args


def run_stage(dbutils: Any, *stages: str) -> None:
    """Declare the widgets, read them, run the stages and publish their task values (e.g. the
    check stage's ``retrain`` for a ``condition_task``); raise so the job task fails on error.

    Without ``stages``, the ``stages`` widget names them (``notebooks/run_stages.py``: a task's
    ``base_parameters: {stages: my_stage}`` runs a stage that has no notebook of its own)."""
    for name in WIDGETS:
        dbutils.widgets.text(name, "")
    values = {name: dbutils.widgets.get(name) for name in WIDGETS}
    if not stages:
        dbutils.widgets.text("stages", "")
        stages = tuple(dbutils.widgets.get("stages").replace(",", " ").split())
        if not stages:
            raise ValueError("the stages parameter is empty. Fix: set base_parameters: {stages: <stage>} on the task")
    summary = run_summary(build_parser().parse_args(notebook_args(values, stages)), project_root())
    print(summary.to_text())
    for stage in summary.stages:
        for key, value in dict(stage.details.get("task_values") or {}).items():
            dbutils.jobs.taskValues.set(key=key, value=value)
    if not summary.ok:
        failed = [s.name for s in summary.stages if s.status != "succeeded"]
        raise RuntimeError(f"{', '.join(failed)} failed; see the summary above")
