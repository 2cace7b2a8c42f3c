"""Sail lane: the stage runner, its audit table and rerun behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest

from {{ cookiecutter.package_name }} import pipeline
from {{ cookiecutter.package_name }}.stage import StageOutput

pytestmark = pytest.mark.sail
PROJECT = Path(__file__).resolve().parents[1]


def test_bootstrap_prepares_volume_and_records_the_run(local_runtime):
    rt = local_runtime
    summary = pipeline.run_stages(rt, ["bootstrap"], run_id="r1", log=lambda _: None, root=PROJECT)
    assert summary.ok and [s.name for s in summary.stages] == ["bootstrap"]
    for folder in pipeline.VOLUME_FOLDERS:
        assert Path(rt.volume_path(pipeline.VOLUME, folder)).is_dir()
    runs = rt.read(pipeline.RUNS_TABLE).collect()
    assert {(r.run_id, r.stage, r.status) for r in runs} == {("r1", "bootstrap", "succeeded")}
    assert summary.audit is not None and summary.audit.rows == 1


def test_rerun_with_same_run_id_does_not_duplicate(local_runtime):
    rt = local_runtime
    for run_id in ("same", "same", "other"):
        pipeline.run_stages(rt, ["bootstrap"], run_id=run_id, log=lambda _: None, root=PROJECT)
    assert sorted(r.run_id for r in rt.read(pipeline.RUNS_TABLE).collect()) == ["other", "same"]


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
    statuses = {r.stage: r.status for r in rt.read(pipeline.RUNS_TABLE).collect()}
    assert statuses == {"bootstrap": "succeeded", "broken": "failed"}


def test_unknown_stage_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown stage 'trian'.*bootstrap.*ingest"):
        pipeline.resolve_stages(["trian"])
    assert pipeline.resolve_stages(["bootstrap", "all", "bootstrap"]) == list(pipeline.STAGES)
    assert pipeline.resolve_stages(["gold", "ingest"]) == ["bronze", "silver", "gold"]
    assert pipeline.resolve_stages(["silver", "bootstrap"]) == ["bootstrap", "silver"]
