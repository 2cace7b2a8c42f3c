"""The whole local lifecycle as a new user runs it, on the default project and on a regression,
many-models project: ``run all`` on a fresh project (sample data generated), drifted data and a
second ``run all`` that detects the drift and retrains, a deliberately worse candidate that is
never promoted, and a third ``run all`` that finds nothing new.  Then, on the default project,
``serve`` over real HTTP: the canary share, a rollback and a promotion served without a restart,
and shadow answers logged and never returned.  Every ``run all`` writes the run report; the
``report`` command writes it again after all that, and a real headless Chromium opens it."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from deltalake import DeltaTable
from pandas import isnull
from prometheus_client.parser import text_string_to_metric_families
from render import render
from selenium.webdriver.common.by import By

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


def report(project: Path) -> tuple[int, str, str]:
    """``python -m PACKAGE report``: its exit code, the last line it printed (the page's path), stderr."""
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    package = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]["package_name"]
    result = subprocess.run([sys.executable, "-m", package, "report", "--target", "local"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=300)
    lines = result.stdout.strip().splitlines()
    return result.returncode, lines[-1] if lines else "", result.stderr


def project_module(page: Path, name: str) -> Any:
    """A helper module of the generated project's tests (``tests/<name>.py``), for the project whose
    report ``page`` is: the harness drives the browser exactly as the project's own tests do."""
    project = next(p for p in page.parents if (p / ".cookiecutter.json").is_file())
    spec = importlib.util.spec_from_file_location(f"project_{name}", project / "tests" / f"{name}.py")
    assert spec and spec.loader, project
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def browse(page: Path, profile: Path) -> dict[str, Any]:
    """What headless Chromium shows of ``page``: each chart's rendered size, each table's rows, the
    console's errors, and a screenshot of the whole page saved beside it."""
    driver = project_module(page, "browser").start_chromium(profile)
    try:
        driver.get(page.as_uri())
        seen: dict[str, Any] = {
            "charts": {e.get_attribute("id"): e.rect for e in driver.find_elements(By.CSS_SELECTOR, "svg.chart")},
            "rows": {t.get_attribute("id"): len(t.find_elements(By.CSS_SELECTOR, "tbody tr"))
                     for t in driver.find_elements(By.CSS_SELECTOR, "table.report-table")},
            "text": driver.find_element(By.TAG_NAME, "body").text}
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(int(height), 12_000))
        seen["screenshot"] = page.with_suffix(".png")
        assert driver.save_screenshot(str(seen["screenshot"]))
        seen["errors"] = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    finally:
        driver.quit()
    return seen


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


def set_serving(project: Path, **settings: Any) -> None:
    path = project / "conf" / "project.yml"
    conf = yaml.safe_load(path.read_text())
    conf["serving"].update(settings)
    path.write_text(yaml.safe_dump(conf, sort_keys=False))


class Served:
    """``python -m PACKAGE serve`` in a process of its own, on a free loopback port."""

    def __init__(self, project: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        package = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]["package_name"]
        env = {**os.environ, "PYTHONPATH": str(project / "src")}
        self.output = (project / f"serve-{self.port}.log").open("w")
        self.process = subprocess.Popen([sys.executable, "-m", package, "serve", "--target", "local", "--port",
                                         str(self.port)], cwd=project, env=env, stdout=self.output,
                                        stderr=subprocess.STDOUT)
        self.url, self.session = f"http://127.0.0.1:{self.port}", requests.Session()
        self.log_file = project / f"serve-{self.port}.log"

    def __enter__(self) -> Served:
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, self.log_file.read_text()
            try:
                self.session.get(f"{self.url}/version", timeout=2).raise_for_status()
                return self
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "serve did not answer within 120 s"
                time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()  # uvicorn shuts down on SIGTERM: the serving log is flushed
        self.process.wait(timeout=60)
        self.output.close()

    def version(self) -> dict[str, Any]:
        return self.session.get(f"{self.url}/version", timeout=10).json()

    def wait_for(self, champion: str) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while (served := self.version())["champion"] != champion:
            assert time.monotonic() < deadline, f"still serving {served} 30 s after the alias moved"
            time.sleep(0.1)
        return served

    def answered_by(self, records: list[dict[str, Any]], count: int) -> list[str]:
        versions = []
        for _ in range(count):
            response = self.session.post(f"{self.url}/invocations", json={"dataframe_records": records}, timeout=30)
            assert response.status_code == 200, response.text
            assert len(response.json()["predictions"]) == len(records)
            versions.append(response.headers["X-Served-By"])
        return versions


def serving(project: Path) -> dict[str, Any]:
    """Canary across a promotion and a rollback while serving, then shadow; what each step saw.  Version 1
    is promoted back over 2, so 2 stays @challenger without having been rolled back from @champion (a
    rolled-back version is never served again)."""
    inference = next(project.glob(".local/warehouse/*/*/inference_log"))
    scored = DeltaTable(str(inference)).to_pandas()
    outputs = ["prediction", "probability", "label", "model_name", "model_version", "model_alias", "scored_at",
               "run_id"]
    records = json.loads(scored.drop(columns=outputs).head(3).to_json(orient="records", date_format="iso"))
    seen: dict[str, Any] = {}
    set_serving(project, mode="canary", canary_share=0.5, refresh_seconds=0.5)
    with Served(project) as served:
        seen["start"] = served.version()
        seen["champion_only"] = served.answered_by(records, 20)
        seen["promote"] = cli(project, "promote", "--version", "1", "--reason", "lifecycle test")
        seen["after_promote"] = served.wait_for("1")
        seen["canary"] = served.answered_by(records, 200)
        seen["rollback"] = cli(project, "rollback", "--reason", "lifecycle test")
        seen["after_rollback"] = served.wait_for("2")
        seen["rolled_back_only"] = served.answered_by(records, 20)
    seen["promote_again"] = cli(project, "promote", "--version", "1", "--reason", "shadow test")
    set_serving(project, mode="shadow")
    with Served(project) as served:
        seen["shadow_start"] = served.version()
        seen["shadow"] = served.answered_by(records, 20)
    seen["log"] = DeltaTable(str(inference.with_name("serving_log"))).to_pandas()
    seen["records"] = records
    return seen


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    projects = {case: prepare(case, tmp_path_factory.mktemp(case)) for case in CASES}  # cookiecutter chdirs
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {case: pool.submit(lifecycle, projects[case]) for case in CASES}
        results = {case: future.result() for case, future in futures.items()}
    results["default"]["serving"] = serving(projects["default"])
    return results


@pytest.mark.parametrize("case", list(CASES))
def test_first_run_all_trains_promotes_scores_and_monitors(runs, case):
    code, summary, log = runs[case]["first"]
    assert code == 0 and summary and summary["ok"], log[-4000:]
    assert "writing sample data first" in log.splitlines()[0]
    by_name = stages(summary)
    assert list(by_name) == ["bootstrap", "bronze", "silver", "gold", "features", "check", "train", "validate",
                             "promote", "deploy_serving", "score", "monitor", "inventory"]
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
def test_every_run_all_writes_the_run_report(runs, case):
    for step in ("first", "second", "third"):
        _, summary, log = runs[case][step]
        assert summary and summary.get("report"), (step, summary and summary.get("report_error"), log[-3000:])
        page = Path(summary["report"])
        assert page.is_file() and page.name == "run_report.html" and page.parent.name == "reports"
        assert page.relative_to(runs[case]["project"] / ".local" / "volumes")
        assert f"report: {page}" in log
        print(f"{case}: {step} run all: the report took {summary['report_seconds']:.2f} s (goal < 1.5 s)")


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
def test_the_inventory_and_the_metrics_file_describe_every_version(runs, case):
    """As the third run all left them (after version 3 failed validation): one inventory row per
    registered version with its aliases and last scoring, and the run's Prometheus file."""
    inventory = DeltaTable(str(next(runs[case]["project"].glob(".local/warehouse/*/*/model_inventory")))).to_pandas()
    # The third run all (after the rejected candidate, version 3) wrote the inventory last.
    assert sorted(inventory["version"].astype(int)) == [1, 2, 3], inventory
    aliases = {str(v): sorted(a) for v, a in zip(inventory["version"], inventory["aliases"], strict=True)}
    assert aliases["2"] == ["challenger", "champion"] and aliases["1"] == [] and aliases["3"] == [], aliases
    scored = dict(zip(inventory["version"].astype(str), inventory["last_scored_at"], strict=True))
    assert not isnull(scored["1"]) and not isnull(scored["2"]) and isnull(scored["3"]), scored

    metrics_file = Path(runs[case]["third"][1]["metrics_file"])
    assert metrics_file.name.endswith("_local_all.prom"), metrics_file
    families = {f.name: f for f in text_string_to_metric_families(metrics_file.read_text())}
    champion = [s.value for s in families["mlops_model_alias_version"].samples if s.labels["alias"] == "champion"]
    assert champion == [2.0], champion  # the file is the last run all's: the third, after version 3 failed


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


def test_serve_routes_the_canary_share_and_follows_promotion_and_rollback_without_a_restart(runs):
    seen = runs["default"]["serving"]
    assert seen["start"] == {**seen["start"], "champion": "2", "challenger": None, "mode": "canary"}
    assert set(seen["champion_only"]) == {"champion:2"}  # no challenger apart from the champion: no canary
    assert seen["promote"][0] == 0, seen["promote"][2]
    assert seen["after_promote"] == {**seen["after_promote"], "champion": "1", "challenger": "2"}
    to_challenger, count = seen["canary"].count("challenger:2"), len(seen["canary"])
    assert to_challenger + seen["canary"].count("champion:1") == count
    assert abs(to_challenger - count / 2) <= 4 * math.sqrt(count / 4), (to_challenger, count)
    assert seen["rollback"][0] == 0, seen["rollback"][2]
    assert seen["after_rollback"] == {**seen["after_rollback"], "champion": "2", "challenger": None}
    assert set(seen["rolled_back_only"]) == {"champion:2"}


def test_serve_in_shadow_mode_logs_the_challenger_and_never_returns_it(runs):
    seen = runs["default"]["serving"]
    assert seen["promote_again"][0] == 0, seen["promote_again"][2]
    assert seen["shadow_start"] == {**seen["shadow_start"], "champion": "1", "challenger": "2", "mode": "shadow"}
    assert set(seen["shadow"]) == {"champion:1"}
    log = seen["log"]
    assert len(log) == 20 + 200 + 20 + 20, "every request is in serving_log"
    shadow = log[log["mode"] == "shadow"]
    assert len(shadow) == 20 and set(shadow["served_version"]) == {"1"} and set(shadow["shadow_version"]) == {"2"}
    for returned, logged in zip(shadow["response"], shadow["shadow_response"], strict=True):
        assert len(json.loads(logged)["predictions"]) == len(seen["records"])
        assert returned != logged, "the two versions answer differently, and only @champion's answer is returned"
    canary = log[log["mode"] == "canary"]
    assert canary["shadow_response"].isna().all() and (canary["status_code"] == 200).all()


def test_the_report_command_shows_the_versions_drift_and_checks_in_chromium(runs, tmp_path):
    """After two models, drift, a rejected candidate, rollbacks and promotions: the page the ``report``
    command writes, as a browser renders it."""
    project = runs["default"]["project"]
    code, path, log = report(project)
    assert code == 0, log[-3000:]
    page = Path(path)
    assert page.is_file() and page == Path(runs["default"]["third"][1]["report"]), (path, log[-2000:])
    seen = browse(page, tmp_path / "profile")
    assert seen["errors"] == [], json.dumps(seen["errors"], indent=2)
    assert set(seen["charts"]) == {"chart-psi", "chart-performance", "chart-versions", "chart-quarantine"}
    assert all(rect["width"] > 200 and rect["height"] > 100 for rect in seen["charts"].values()), seen["charts"]
    rows = seen["rows"]
    assert rows["model-versions"] >= 3, "versions 1 and 2, and the rejected candidate"
    assert rows["performance"] >= 2 and rows["alias-history"] >= 6, rows
    assert rows["model-checks"] > 0 and rows["fairness-groups"] > 0 and rows["quarantine-reasons"] > 0, rows
    assert rows["latest-run"] == len(stages(runs["default"]["third"][1])), rows
    assert "FAILED" in seen["text"], "the rejected candidate's failed check is on the page"
    assert rows["model-inventory"] == 3, "one row per registered version: 1, 2 and the rejected candidate"
    data = seen["screenshot"].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 1000 and height >= 3000, (width, height)
