"""Dashboards, SQL alerts and notification destinations: the shipped ones are sound, and bundle-check
catches each kind of mistake with a line that names the file, the dataset or variable, and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }}.config import load_project
from {{ cookiecutter.package_name }}.tools import bundle_check

# Reads the bundle (databricks.yml, resources/): runs for every rendered option set.
pytestmark = pytest.mark.bundle

PROJECT = Path(__file__).resolve().parents[1]
BOARDS = PROJECT / "resources" / "dashboards"
HEALTH = "resources/dashboards/model_health.lvdash.json"
DESTINATION = "0d3c6e6a-1b2c-4d5e-8f90-a1b2c3d4e5f6"
TARGETS = list(yaml.safe_load((PROJECT / "databricks.yml").read_text())["targets"])


def edit_yaml(root: Path, rel: str, change) -> None:
    path = root / rel
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def edit_text(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert old in text, f"{old!r} is not in {rel}"
    path.write_text(text.replace(old, new, 1))


def edit_query(root: Path, dataset: str, old: str, new: str, rel: str = HEALTH) -> None:
    """Replace text in one dataset's query of a dashboard file."""
    path = root / rel
    board = json.loads(path.read_text())
    spec = next(d for d in board["datasets"] if d["name"] == dataset)
    query = "".join(spec.pop("queryLines"))
    assert old in query, f"{old!r} is not in dataset {dataset!r}"
    spec["queryLines"] = [query.replace(old, new, 1)]
    path.write_text(json.dumps(board, indent=2))


def problems(root: Path, target: str = "prod") -> list[str]:
    return bundle_check.check(root, targets=[target])[0]


def target_variables(data: dict, target: str) -> dict:
    return data["targets"][target].setdefault("variables", {})


def queries(board: dict) -> dict[str, str]:
    return {d["name"]: "".join(d.get("queryLines") or [d.get("query", "")]) for d in board["datasets"]}


def test_every_dashboard_resource_points_at_a_dashboard_file_that_parses():
    merged = bundle_check.resolved(PROJECT, "prod")
    boards = merged["resources"]["dashboards"]
    assert {"model_health", "finops"} <= set(boards)
    for key, spec in boards.items():
        origin = PROJECT / "resources"
        board = json.loads((origin / spec["file_path"]).read_text())
        datasets = {d["name"] for d in board["datasets"]}
        widgets = [item["widget"] for page in board["pages"] for item in page["layout"]]
        named = {q["query"]["datasetName"] for w in widgets for q in w.get("queries") or []}
        assert named and named <= datasets, (key, named - datasets)
        assert datasets <= named, f"{key}: datasets no widget shows: {datasets - named}"
        assert spec["dataset_catalog"] and spec["dataset_schema"], "bare table names resolve in the target's schema"
        assert spec["embed_credentials"] is False, "viewers read with their own rights"


def test_dashboard_queries_read_only_project_tables_or_documented_system_tables():
    written = bundle_check.project_tables(PROJECT, [])
    for path in sorted(BOARDS.glob("*.lvdash.json")):
        for name, query in queries(json.loads(path.read_text())).items():
            tables = bundle_check.tables_read(query)
            assert tables, f"{path.name}: {name} reads no table"
            for table in tables:
                assert table in written or table.endswith("_serving_payload") or (
                    table.startswith("system.") and bundle_check.is_documented_system_table(table)), (path.name, name, table)
    assert {"drift_metrics", "validation_results", "inference_log", "ingest_metrics", "pipeline_runs"} <= set(written)


def test_the_serving_dashboard_exists_exactly_when_serving_is_configured():
    serving = load_project(PROJECT).serving is not None
    assert (BOARDS / "serving.lvdash.json").is_file() == serving
    assert (PROJECT / "resources" / "serving_dashboard.yml").is_file() == serving


def test_a_query_naming_an_unknown_table_is_reported_with_file_dataset_and_fix(project_copy):
    edit_query(project_copy, "quarantine", "FROM ingest_metrics", "FROM ingest_metricz")
    found = [line for line in problems(project_copy) if "ingest_metricz" in line]
    assert len(found) == 1, found
    assert found[0].startswith(f"{HEALTH} (resources.dashboards.model_health): dataset 'quarantine': reads "
                               "'ingest_metricz', which this project does not write. Fix: correct the name")


def test_qualified_names_undocumented_system_tables_and_undeclared_parameters_are_reported(project_copy):
    edit_query(project_copy, "psi", "FROM drift_metrics\nWHERE kind = 'psi'",
               "FROM prod.other.drift_metrics\nWHERE kind = :kind")
    edit_query(project_copy, "freshness", "FROM pipeline_runs", "FROM system.access.audit")
    found = problems(project_copy)
    assert any("dataset 'psi': reads 'prod.other.drift_metrics', outside the project's schema. Fix: write the "
               "bare name 'drift_metrics'" in line for line in found), found
    assert any("dataset 'psi': the query uses :kind, which its 'parameters' do not declare" in line
               for line in found), found
    assert any("dataset 'freshness': reads 'system.access.audit', which is not a documented system table" in line
               for line in found), found


def test_monitor_output_tables_need_the_quality_monitor(project_copy):
    edit_query(project_copy, "freshness", "FROM pipeline_runs", "FROM inference_log_profile_metrics")
    (project_copy / "resources" / "monitoring.yml").unlink(missing_ok=True)
    assert any("reads 'inference_log_profile_metrics', which this project does not write. Fix: a quality monitor "
               "writes it" in line for line in problems(project_copy)), "pruned with include_monitoring=no"


def test_a_widget_naming_a_missing_dataset_or_column_is_reported(project_copy):
    edit_text(project_copy, HEALTH, '"datasetName": "freshness"', '"datasetName": "freshnes"')
    edit_text(project_copy, HEALTH, '"expression": "MAX(`quarantine_rate`)"', '"expression": "MAX(`quarantine_rte`)"')
    found = problems(project_copy)
    assert any("(widget 'hours_since_scoring').queries[0].query.datasetName: 'freshnes' is not a dataset of this "
               "dashboard" in line for line in found), found
    assert any("field 'max(quarantine_rate)' reads column 'quarantine_rte', which dataset 'quarantine' does not "
               "select" in line for line in found), found


def test_a_missing_or_broken_dashboard_file_is_reported(project_copy):
    (project_copy / HEALTH).write_text('{"datasets": [], "pages": []}')
    assert any(line.startswith(f"{HEALTH} (resources.dashboards.model_health): not a dashboard")
               for line in problems(project_copy))
    (project_copy / HEALTH).unlink()
    assert any("resources.dashboards.model_health.file_path: 'dashboards/model_health.lvdash.json' is not an "
               "existing .lvdash.json file" in line for line in problems(project_copy))


@pytest.mark.parametrize("target", TARGETS)
def test_alerts_watch_drift_performance_quarantine_and_freshness(target):
    merged = bundle_check.resolved(PROJECT, target)
    alerts = merged["resources"]["alerts"]
    by_table = {key: bundle_check.tables_read(spec["query_text"])[0].rsplit(".", 1)[-1] for key, spec in alerts.items()}
    assert by_table == {"drift_psi": "drift_metrics", "performance_breach": "drift_metrics",
                        "quarantine_rate": "ingest_metrics", "scoring_freshness": "pipeline_runs"}
    assert "kind = 'psi'" in alerts["drift_psi"]["query_text"]
    assert "kind = 'performance'" in alerts["performance_breach"]["query_text"]
    assert "quarantine_rate > threshold" in alerts["quarantine_rate"]["query_text"]
    assert "stage = 'score'" in alerts["scoring_freshness"]["query_text"]
    for spec in alerts.values():
        assert spec["evaluation"]["notification"]["subscriptions"], "someone is notified"
        expected = "PAUSED" if target in ("dev", "test") else "UNPAUSED"
        assert spec["schedule"]["pause_status"] == expected


def test_an_alert_must_qualify_its_tables_and_return_the_column_it_evaluates(project_copy):
    qualified = "${var.catalog}.${resources.schemas.project_schema.name}.pipeline_runs"
    edit_text(project_copy, "resources/alerts.yml", qualified, "pipeline_runs")
    edit_text(project_copy, "resources/alerts.yml", "name: hours_since_scoring", "name: hours_since_score")
    found = problems(project_copy)
    assert ("resources/alerts.yml: resources.alerts.scoring_freshness.query_text: reads 'pipeline_runs' without "
            f"catalog and schema. Fix: write {qualified}") in found
    assert any("resources.alerts.scoring_freshness.evaluation.source.name: 'hours_since_score' is not a column"
               in line for line in found), found


@pytest.mark.parametrize("target", TARGETS)
def test_every_job_sends_failures_and_duration_breaches_to_the_destinations(target):
    merged = bundle_check.resolved(PROJECT, target)
    for key, job in merged["resources"]["jobs"].items():
        hooks = job["webhook_notifications"]
        assert hooks == {"on_failure": [], "on_duration_warning_threshold_exceeded": []}, key
        assert job["email_notifications"]["on_duration_warning_threshold_exceeded"], key


def test_a_job_without_webhook_notifications_is_reported(project_copy):
    edit_yaml(project_copy, "resources/bootstrap_job.yml",
              lambda d: d["resources"]["jobs"]["bootstrap"].pop("webhook_notifications"))
    assert any(line.startswith("resources/bootstrap_job.yml: resources.jobs.bootstrap.webhook_notifications: no "
                               "on_failure or on_duration_warning_threshold_exceeded") for line in problems(project_copy))


def test_destination_ids_set_for_a_target_reach_every_job_and_alert(project_copy):
    def change(data):
        target_variables(data, "prod").update(
            notification_destinations=[{"id": DESTINATION}],
            alert_subscriptions=[{"user_email": "${var.owner}"}, {"destination_id": DESTINATION}])

    edit_yaml(project_copy, "databricks.yml", change)
    assert problems(project_copy) == []
    merged = bundle_check.resolved(project_copy, "prod")
    for job in merged["resources"]["jobs"].values():
        assert job["webhook_notifications"]["on_failure"] == [{"id": DESTINATION}]
    for alert in merged["resources"]["alerts"].values():
        assert alert["evaluation"]["notification"]["subscriptions"][1] == {"destination_id": DESTINATION}


def test_a_notification_id_that_is_not_a_uuid_is_rejected_naming_the_variable(project_copy):
    def change(data):
        target_variables(data, "prod").update(notification_destinations=[{"id": "slack-alerts"}],
                                              alert_subscriptions=[{"destination_id": "pagerduty"}])

    edit_yaml(project_copy, "databricks.yml", change)
    found = problems(project_copy)
    assert ("databricks.yml: variables.notification_destinations (target prod): [0].id: 'slack-alerts' is not a "
            "notification destination id") in "\n".join(found), found
    assert sum("variables.notification_destinations" in line for line in found) == 1, "reported once"
    assert any(line.startswith("databricks.yml: variables.alert_subscriptions (target prod): [0].destination_id: "
                               "'pagerduty' is not a notification destination id") and
               "targets.prod.variables.alert_subscriptions" in line for line in found), found


def test_a_list_variable_must_be_declared_complex(project_copy):
    edit_yaml(project_copy, "databricks.yml", lambda d: d["variables"]["notification_destinations"].pop("type"))
    assert ("databricks.yml: variables.notification_destinations: the default is a list. Fix: add type: complex"
            in problems(project_copy))


def test_the_warehouse_is_a_lookup_by_name_or_an_id(project_copy):
    edit_yaml(project_copy, "databricks.yml", lambda d: target_variables(d, "prod").update(warehouse_id="abc"))
    assert any("resources.dashboards.model_health.warehouse_id: 'abc' (variable 'warehouse_id') in target prod is "
               "not a SQL warehouse id" in line for line in problems(project_copy))
    edit_yaml(project_copy, "databricks.yml",
              lambda d: target_variables(d, "prod").update(warehouse_id="1234567890abcdef"))
    assert problems(project_copy) == []
    edit_yaml(project_copy, "databricks.yml",
              lambda d: target_variables(d, "prod").update(warehouse_id={"lookup": {"warehouse": "Shared"}}))
    assert problems(project_copy) == []


def test_table_extraction_skips_ctes_subqueries_functions_comments_and_strings():
    query = ("WITH a AS (SELECT 1), b AS (SELECT * FROM `c`.`s`.t1)\n"
             "SELECT EXTRACT(HOUR FROM ts), 'FROM x' -- FROM y\n"
             "FROM a JOIN b USING (k) JOIN (SELECT * FROM t2) AS t LEFT JOIN range(3) AS r\n"
             "JOIN ${var.catalog}.${resources.schemas.project_schema.name}.t3 ON true")
    assert bundle_check.tables_read(query) == [
        "c.s.t1", "t2", "${var.catalog}.${resources.schemas.project_schema.name}.t3"]
    assert bundle_check.query_parameters("SELECT x::int FROM t WHERE a = :project AND raw:path = ':no'") == {"project"}
