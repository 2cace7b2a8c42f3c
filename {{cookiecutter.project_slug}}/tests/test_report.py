"""The run report: the HTML builder on its own (escaping, empty tables), the ``report`` command, and
the page written from a lake run through monitor, opened in a real headless Chromium: charts and
tables rendered with a size, no console error, and a screenshot kept next to the report."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from browser import start_chromium
from pyspark.sql import functions as F
from selenium.webdriver.common.by import By

from {{ cookiecutter.package_name }}.config import load_project
from {{ cookiecutter.package_name }}.contract import load_contracts
from {{ cookiecutter.package_name }}.names import DRIFT_TABLE, RUNS_TABLE
from {{ cookiecutter.package_name }}.tools import report

CHARTS = {"chart-psi", "chart-performance", "chart-versions", "chart-quarantine"}
TABLES_WITH_ROWS = {"latest-run", "recent-runs", "psi-latest", "performance", "model-versions", "alias-history",
                    "quarantine-reasons", "ingest-batches", "data-expectations", "model-checks"}


@contextmanager
def chromium(profile: Path) -> Iterator[Future[Any]]:
    """Chromium starting on a thread while the test writes the report (a second saved), quit at the end."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        starting = pool.submit(start_chromium, profile)
        try:
            yield starting
        finally:
            if starting.exception() is None:
                starting.result().quit()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def sample_report(**changes: Any) -> report.Report:
    table = report.Table("cells", "Cells & <captions>", ["name", "value"],
                         [["<script>alert(1)</script>", 0.123456], ['"quoted" & more', None]], "never shown")
    empty = report.Table("empty-table", "An empty table", ["a"], [], "Fix: run <all>.")
    section = report.Section("s1", "Section <one>", "a note & more", [table, empty])
    return report.Report(**{"title": "Run report: <model>", "subtitle": "target local", "glance": [("run", "<ok>")],
                            "sections": [section], **changes})


def test_the_page_escapes_every_text_and_says_nothing_yet_for_an_empty_table():
    page = report.render_html(sample_report())
    assert "<script" not in page.lower(), "no text becomes markup, and the page has no script of its own"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&quot;quoted&quot; &amp; more" in page
    assert "Cells &amp; &lt;captions&gt;" in page and "Section &lt;one&gt;" in page and "&lt;ok&gt;" in page
    assert '<table id="cells" class="report-table">' in page and "<td>0.1235</td>" in page
    assert '<table id="empty-table"' not in page
    assert re.search(r'<p class="empty" id="empty-table-empty"[^>]*>An empty table: nothing yet\. Fix: run &lt;all&gt;',
                     page)


def test_sections_built_from_no_data_render_without_a_crash():
    nothing = pd.DataFrame()
    run, _ = report.run_section(nothing, nothing)
    drift, _ = report.drift_section(pd.DataFrame(columns=["period", "kind", "name", "value", "threshold", "breached",
                                                          "rows", "model_version"]))
    models, _ = report.models_section(nothing, {}, [], None, "classification")
    quality, _ = report.validation_section(nothing, nothing, report._frame([], ["source", "reason", "rows"]), nothing)
    page = report.render_html(report.Report("Run report", "target local", [], [run, drift, models, quality]))
    assert "<table" not in page and "<svg" not in page
    for part in ("latest-run", "chart-psi", "chart-performance", "model-versions", "chart-quarantine", "model-checks"):
        assert f'id="{part}-empty"' in page, part
    assert "No inventory yet" in page


def test_charts_are_inline_svg_with_ids_of_their_own():
    psi = pd.DataFrame({"period": ["2024-01-01", "2024-01-01", "2024-02-01", "2024-02-01"], "name": ["a$b", "c"] * 2,
                        "value": [0.01, 0.3, 0.05, 0.25], "threshold": [0.2] * 4})
    charts = [report.psi_over_time(psi), report.psi_over_time(psi, "chart-again")]
    page = report.render_html(sample_report(sections=[report.Section("d", "Drift", "", charts)]))
    assert report.chart_ids(page) == ["chart-psi", "chart-again"]
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "matplotlib numbers every figure alike; each chart's ids are prefixed"
    assert '<title id="chart-psi-title">' in page
    assert not re.search(r'(?:src|href)="(?!#|data:)', page), "nothing is fetched: no external file, no network"


def test_the_report_command_prints_the_path_last_even_before_any_run(cli, tmp_path):
    out = tmp_path / "out" / "report.html"
    result = cli("report", "--target", "local", "--local-dir", str(tmp_path / ".local"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(out)
    page = out.read_text(encoding="utf-8")
    assert "nothing has run yet" in page and 'id="latest-run-empty"' in page
    assert not (tmp_path / ".local" / "mlflow.db").exists(), "reading the report creates no MLflow store"


@pytest.mark.sail
def test_the_report_of_a_monitored_lake_renders_in_chromium(looped, tmp_path):
    rt, root, _ = looped
    with chromium(tmp_path / "profile") as starting:
        path = report.write_report(rt, root)
        assert path == report.default_path(rt) and path.parent.name == "reports"
        page = path.read_text(encoding="utf-8")
        assert set(report.chart_ids(page)) == CHARTS

        runs = rt.read(RUNS_TABLE)
        latest = runs.orderBy(F.col("started_at").desc()).first()["run_id"]
        stages = runs.where(F.col("run_id") == latest).count()
        psi = rt.read(DRIFT_TABLE).where(F.col("kind") == "psi")
        last_period = psi.agg(F.max("period")).first()[0]
        columns = psi.where(F.col("period") == last_period).select("name").distinct().count()
        project = load_project(root)
        fairness = bool(project.validation.fairness and project.validation.fairness.max_difference
                        and load_contracts(root)[project.source].sensitive_columns)
        driver = starting.result()
        driver.get(path.as_uri())
        assert driver.title.startswith("Run report")
        for chart in CHARTS:
            element = driver.find_element(By.ID, chart)
            assert element.tag_name == "svg" and element.get_attribute("aria-label"), chart
            assert element.rect["width"] > 200 and element.rect["height"] > 100, (chart, element.rect)
        rows = {table: len(driver.find_elements(By.CSS_SELECTOR, f"table#{table} tbody tr"))
                for table in (*TABLES_WITH_ROWS, "fairness-groups", "model-inventory")}
        assert all(rows[t] > 0 for t in TABLES_WITH_ROWS), rows
        assert rows["latest-run"] == stages and rows["psi-latest"] == columns
        assert (rows["fairness-groups"] > 0) == fairness, rows
        if rows["model-inventory"] == 0:
            assert "No inventory yet" in driver.find_element(By.ID, "model-inventory-empty").text
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(int(height), 12_000))
        screenshot = path.with_suffix(".png")
        assert driver.save_screenshot(str(screenshot))
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], json.dumps(errors, indent=2)
    width, tall = png_size(screenshot)
    assert width >= 1000 and tall >= 2000 and screenshot.stat().st_size > 50_000, (width, tall)
