"""Sail lane: the stage runner, its audit table and rerun behaviour."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }} import pipeline
from {{ cookiecutter.package_name }}.context import StageOutput
from {{ cookiecutter.package_name }}.names import LANDING_VOLUME, RUNS_TABLE
from {{ cookiecutter.package_name }}.stages.bootstrap import VOLUME_FOLDERS

pytestmark = pytest.mark.sail
PROJECT = Path(__file__).resolve().parents[1]


def test_bootstrap_prepares_volume_and_records_the_run(local_runtime):
    rt = local_runtime
    summary = pipeline.run_stages(rt, ["bootstrap"], run_id="r1", log=lambda _: None, root=PROJECT)
    assert summary.ok and [s.name for s in summary.stages] == ["bootstrap"]
    for folder in VOLUME_FOLDERS:
        assert Path(rt.volume_path(LANDING_VOLUME, folder)).is_dir()
    runs = rt.read(RUNS_TABLE).collect()
    assert {(r.run_id, r.stage, r.status) for r in runs} == {("r1", "bootstrap", "succeeded")}
    assert summary.audit is not None and summary.audit.rows == 1


def test_rerun_with_same_run_id_does_not_duplicate(local_runtime):
    rt = local_runtime
    for run_id in ("same", "same", "other"):
        pipeline.run_stages(rt, ["bootstrap"], run_id=run_id, log=lambda _: None, root=PROJECT)
    assert sorted(r.run_id for r in rt.read(RUNS_TABLE).collect()) == ["other", "same"]


def test_failing_stage_stops_the_run_and_is_recorded(local_runtime, monkeypatch):
    rt = local_runtime

    def broken(_rt, _ctx):
        raise RuntimeError("source folder is empty")

    monkeypatch.setitem(pipeline.STAGES, "broken", broken)
    monkeypatch.setitem(pipeline.STAGES, "after", lambda _rt, _ctx: StageOutput())
    summary = pipeline.run_stages(rt, ["bootstrap", "broken", "after"], run_id="f", log=lambda _: None,
                                  root=PROJECT)
    assert not summary.ok
    assert [(s.name, s.status) for s in summary.stages] == [("bootstrap", "succeeded"), ("broken", "failed")]
    assert "source folder is empty" in summary.stages[1].error
    statuses = {r.stage: r.status for r in rt.read(RUNS_TABLE).collect()}
    assert statuses == {"bootstrap": "succeeded", "broken": "failed"}


def test_unknown_stage_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown stage 'trian'.*bootstrap.*ingest"):
        pipeline.resolve_stages(["trian"])
    assert pipeline.resolve_stages(["bootstrap", "all", "bootstrap"]) == list(pipeline.STAGES)
    assert pipeline.resolve_stages(["gold", "ingest"]) == ["bronze", "silver", "gold"]
    assert pipeline.resolve_stages(["silver", "bootstrap"]) == ["bootstrap", "silver"]


def test_a_new_stage_module_joins_run_all_at_its_declared_position(tmp_path):
    """Adding a stage is one module under stages/ (plus its job task and test): no registry edit."""
    stages = tmp_path / "stages"
    shutil.copytree(pipeline.STAGES_DIR, stages, ignore=shutil.ignore_patterns("__pycache__"))
    (stages / "explain.py").write_text('ORDER = {"explain": 105}\n\n\ndef run(rt, ctx):\n    return None\n')
    found, groups = pipeline.discover_stages(stages)
    assert list(found)[-4:] == ["score", "explain", "monitor", "inventory"] and found["explain"] == "explain:run"
    assert groups == {"ingest": ["bronze", "silver", "gold"]} and found["silver"] == "ingest:silver"
    (stages / "twice.py").write_text('ORDER = {"explain": 5}\n')
    with pytest.raises(ValueError, match="declared twice: explain"):
        pipeline.discover_stages(stages)
    (stages / "twice.py").write_text("STAGE = 'twice'\n")
    with pytest.raises(ValueError, match=r"twice.py: a stage module declares its stages as ORDER"):
        pipeline.discover_stages(stages)
