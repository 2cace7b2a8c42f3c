"""Sail lane: the stage runner, its audit table and rerun behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest

from {{ cookiecutter.package_name }} import pipeline

pytestmark = pytest.mark.sail


def test_bootstrap_prepares_volume_and_records_the_run(local_runtime):
    rt = local_runtime
    summary = pipeline.run_stages(rt, ["all"], run_id="r1", log=lambda _: None)
    assert summary.ok and [s.name for s in summary.stages] == list(pipeline.STAGES)
    for folder in pipeline.VOLUME_FOLDERS:
        assert Path(rt.volume_path(pipeline.VOLUME, folder)).is_dir()
    runs = rt.read(pipeline.RUNS_TABLE).collect()
    assert {(r.run_id, r.stage, r.status) for r in runs} == {("r1", "bootstrap", "succeeded")}
    assert summary.audit is not None and summary.audit.rows == 1


def test_rerun_with_same_run_id_does_not_duplicate(local_runtime):
    rt = local_runtime
    pipeline.run_stages(rt, ["bootstrap"], run_id="same", log=lambda _: None)
    pipeline.run_stages(rt, ["bootstrap"], run_id="same", log=lambda _: None)
    pipeline.run_stages(rt, ["bootstrap"], run_id="other", log=lambda _: None)
    assert sorted(r.run_id for r in rt.read(pipeline.RUNS_TABLE).collect()) == ["other", "same"]


def test_failing_stage_stops_the_run_and_is_recorded(local_runtime, monkeypatch):
    rt = local_runtime

    def broken(_rt):
        raise RuntimeError("source folder is empty")

    monkeypatch.setitem(pipeline.STAGES, "broken", broken)
    monkeypatch.setitem(pipeline.STAGES, "after", lambda _rt: [])
    summary = pipeline.run_stages(rt, ["bootstrap", "broken", "after"], run_id="f", log=lambda _: None)
    assert not summary.ok
    assert [(s.name, s.status) for s in summary.stages] == [("bootstrap", "succeeded"), ("broken", "failed")]
    assert "source folder is empty" in summary.stages[1].error
    statuses = {r.stage: r.status for r in rt.read(pipeline.RUNS_TABLE).collect()}
    assert statuses == {"bootstrap": "succeeded", "broken": "failed"}


def test_unknown_stage_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown stage 'trian'.*bootstrap"):
        pipeline.resolve_stages(["trian"])
    assert pipeline.resolve_stages(["bootstrap", "all", "bootstrap"]) == list(pipeline.STAGES)
