"""The whole local lifecycle as a new user runs it, on the default project and on a regression,
many-models project: ``run all`` on a fresh project (sample data generated), drifted data and a
second ``run all`` that detects the drift and retrains, a deliberately worse candidate that is
never promoted, and a third ``run all`` that finds nothing new."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from render import render

# The drifted week is a November week: its temperature, its demand history (the label's lags and means) and
# the predicted demand differ from the whole training year.
SEASONAL = {"temperature_c", "label_lag_1", "label_lag_52", "label_mean_4", "label_mean_13", "prediction", "none"}
CASES: dict[str, tuple[dict[str, str], list[str] | None]] = {
    "default": ({}, None),
    "regression-many-models": ({"problem_type": "regression"}, ["category"]),
}


def cli(project: Path, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    package = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]["package_name"]
    result = subprocess.run([sys.executable, "-m", package, *args], cwd=project, env=env, capture_output=True,
                            text=True, timeout=900)
    summary = json.loads(result.stdout) if "--json" in args and result.stdout.strip().startswith("{") else None
    return result.returncode, summary, result.stderr


def stages(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in summary["stages"]}


def prepare(case: str, tmp: Path) -> Path:
    options, segment_by = CASES[case]
    project = render(options, tmp)
    if segment_by:
        path = project / "conf" / "project.yml"
        settings = yaml.safe_load(path.read_text())
        settings["training"]["segment_by"] = segment_by
        path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return project


def lifecycle(project: Path) -> dict[str, Any]:
    steps: dict[str, Any] = {"project": project}
    started = time.perf_counter()
    steps["first"] = cli(project, "run", "all", "--target", "local", "--json")
    steps["first_seconds"] = time.perf_counter() - started
    steps["drift_data"] = cli(project, "sample-data", "--drift")
    steps["second"] = cli(project, "run", "all", "--target", "local", "--json")

    path = project / "conf" / "project.yml"
    settings = yaml.safe_load(path.read_text())
    settings["training"]["params"]["min_data_in_leaf"] = 10_000_000  # no split possible: a constant model
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    steps["worse"] = cli(project, "run", "train", "validate", "promote", "--target", "local", "--json")
    steps["third"] = cli(project, "run", "all", "--target", "local", "--json")
    return steps


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    projects = {case: prepare(case, tmp_path_factory.mktemp(case)) for case in CASES}  # cookiecutter chdirs
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {case: pool.submit(lifecycle, projects[case]) for case in CASES}
        return {case: future.result() for case, future in futures.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_first_run_all_trains_promotes_scores_and_monitors(runs, case):
    code, summary, log = runs[case]["first"]
    assert code == 0 and summary and summary["ok"], log[-4000:]
    assert "writing sample data first" in log.splitlines()[0]
    by_name = stages(summary)
    assert list(by_name) == ["bootstrap", "bronze", "silver", "gold", "features", "check", "train", "validate",
                             "promote", "score", "monitor"]
    assert by_name["check"]["details"]["retrain"] is True
    assert by_name["promote"]["details"]["champion"] == by_name["train"]["details"]["version"] == "1"
    assert by_name["score"]["details"]["inserted"] > 0
    monitored = by_name["monitor"]["details"]
    if case == "default":
        assert monitored["drift_detected"] is False, monitored
    else:
        # Weekly sales are seasonal: one November week differs from the whole training year in
        # temperature and in the predicted demand, and nothing else.
        assert set(monitored["drifted"].split(", ")) <= SEASONAL, monitored
    print(f"{case}: first run all took {runs[case]['first_seconds']:.1f} s wall (goal <= 60 s)")


@pytest.mark.parametrize("case", list(CASES))
def test_drifted_data_is_detected_and_the_model_retrained(runs, case):
    assert runs[case]["drift_data"][0] == 0, runs[case]["drift_data"][2]
    code, summary, log = runs[case]["second"]
    assert code == 0 and summary and summary["ok"], log[-4000:]
    by_name = stages(summary)
    assert by_name["check"]["details"]["retrain"] is True
    assert "drifts from version 1" in by_name["check"]["details"]["reason"]
    assert by_name["train"]["details"]["version"] == "2"
    assert by_name["promote"]["details"] == {**by_name["promote"]["details"], "champion": "2", "previous": "1"}
    assert by_name["monitor"]["details"]["version"] == "2"


@pytest.mark.parametrize("case", list(CASES))
def test_a_worse_candidate_is_never_promoted(runs, case):
    code, summary, log = runs[case]["worse"]
    assert code == 1 and summary and not summary["ok"], log[-4000:]
    by_name = stages(summary)
    assert by_name["validate"]["status"] == "failed" and "FAILED" in by_name["validate"]["error"]
    assert "promote" not in by_name
    code, summary, log = runs[case]["third"]  # the next run serves the champion it had
    assert code == 0 and stages(summary)["score"]["details"]["version"] == "2", log[-4000:]


@pytest.mark.parametrize("case", list(CASES))
def test_a_rerun_without_new_data_does_not_retrain(runs, case):
    code, summary, log = runs[case]["third"]
    assert code == 0 and summary and summary["ok"], log[-4000:]
    by_name = stages(summary)
    assert by_name["check"]["details"]["retrain"] is False
    assert "skipped" in by_name["train"]["details"]
    assert by_name["score"]["details"]["inserted"] == 0
