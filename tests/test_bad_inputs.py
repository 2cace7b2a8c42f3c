"""Bad answers are rejected before anything is written: one line naming the field, the
value and the fix, a non-zero exit, and no output directory left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException
from render import UnknownOptionError, render

TEMPLATE = Path(__file__).resolve().parents[1]

# (id, answers, text the error must contain)
BAD_INPUTS = [
    ("slug-uppercase", {"project_slug": "Churn_Model"}, "project_slug: 'Churn_Model' is not a valid distribution"),
    ("slug-leading-digit", {"project_slug": "1churn"}, "project_slug: '1churn'"),
    ("package-hyphen", {"package_name": "churn-model"}, "package_name: 'churn-model' is not a valid Python package"),
    ("package-keyword", {"package_name": "import"}, "package_name: 'import' would shadow a Python keyword"),
    ("package-shadows-dependency", {"package_name": "mlflow"}, "package_name: 'mlflow' would shadow"),
    ("package-shadows-stdlib", {"package_name": "json"}, "package_name: 'json' would shadow"),
    ("host-http", {"dev_workspace_host": "http://adb-1.1.azuredatabricks.net"},
     "dev_workspace_host: 'http://adb-1.1.azuredatabricks.net' is not an https:// URL"),
    ("host-trailing-path", {"prod_workspace_host": "https://adb-2.2.azuredatabricks.net/?o=2#job/1"},
     "prod_workspace_host: 'https://adb-2.2.azuredatabricks.net/?o=2#job/1' has a path, query"),
    ("host-trailing-slash", {"staging_workspace_host": "https://adb-3.3.azuredatabricks.net/"},
     "staging_workspace_host: 'https://adb-3.3.azuredatabricks.net/' has a path"),
    ("host-wrong-cloud", {"cloud": "aws", "prod_workspace_host": "https://adb-2.2.azuredatabricks.net"},
     "prod_workspace_host: 'https://adb-2.2.azuredatabricks.net' is not a aws workspace"),
    ("catalog-hyphen", {"dev_catalog": "dev-catalog"}, "dev_catalog: 'dev-catalog' is not a valid Unity Catalog name"),
    ("schema-dot", {"schema_name": "ml.churn"}, "schema_name: 'ml.churn' is not a valid Unity Catalog name"),
    ("catalog-uppercase", {"prod_catalog": "Prod"}, "prod_catalog: 'Prod' is not a valid Unity Catalog name"),
    ("branch-space", {"default_branch": "my branch"}, "default_branch: 'my branch' is not a valid git branch"),
    ("branch-dotdot", {"release_branch": "release..v1"}, "release_branch: 'release..v1' is not a valid git branch"),
    ("branch-lock", {"release_branch": "release.lock"}, "release_branch: 'release.lock' is not a valid git branch"),
    ("branches-equal", {"release_branch": "main"}, "release_branch: 'main' equals default_branch"),
    ("email-no-domain", {"author_email": "ml-platform"}, "author_email: 'ml-platform' is not an e-mail address"),
    ("owner-email", {"owner_email": "owner@localhost"}, "owner_email: 'owner@localhost' is not an e-mail address"),
    ("sp-not-uuid", {"staging_service_principal": "my-sp"},
     "staging_service_principal: 'my-sp' is not a service-principal application id"),
    ("sp-uppercase-uuid", {"prod_service_principal": "00000000-0000-0000-0000-00000000BBBB"},
     "prod_service_principal: '00000000-0000-0000-0000-00000000BBBB' is not a service-principal"),
    ("sp-shared", {"prod_service_principal": "00000000-0000-0000-0000-00000000aaaa"},
     "prod_service_principal: '00000000-0000-0000-0000-00000000aaaa' is also the staging one"),
    ("prod-catalog-shared", {"prod_catalog": "dev"}, "prod_catalog: 'dev' is also the dev or staging catalog"),
    ("cost-center-symbols", {"cost_center": "CC<1>"}, "cost_center: 'CC<1>' is not a valid cost tag value"),
    ("name-with-quote", {"project_name": 'Churn "v2"'}, "project_name: 'Churn \"v2\"' contains a quote"),
    ("name-empty", {"project_name": ""}, "project_name: '' is empty"),
    ("name-without-letters", {"project_name": "!!!"}, "project_name: '!!!' has no letters or digits"),
    ("description-interpolation", {"description": "uses ${secrets.token}"},
     "description: 'uses ${secrets.token}' contains"),
    ("group-empty", {"mlops_group": "  "}, "mlops_group: '  ' is empty"),
]
# Choice values are checked by cookiecutter itself before any hook runs (then re-checked by the hook).
BAD_CHOICES = [("include_monitoring", "Yes"), ("cloud", "azur"), ("compute", "serverles"), ("python_version", "3.9")]


def assert_nothing_written(out: Path) -> None:
    assert list(out.iterdir()) == [], f"left behind: {list(out.iterdir())}"


@pytest.mark.parametrize(("answers", "message"), [(a, m) for _, a, m in BAD_INPUTS],
                         ids=[i for i, _, _ in BAD_INPUTS])
def test_bad_input_is_rejected_with_field_and_fix(tmp_path, capfd, answers, message):
    with pytest.raises(FailedHookException):
        render(answers, tmp_path)
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR ")]
    assert len(lines) == 1 and message in lines[0], lines
    assert "Fix:" in lines[0]
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize(("field", "value"), BAD_CHOICES)
def test_unknown_choice_is_rejected_naming_field_and_choices(tmp_path, field, value):
    with pytest.raises(ValueError, match=rf"{value} provided for choice variable {field}, but the choices are"):
        render({field: value}, tmp_path)
    assert_nothing_written(tmp_path)


def test_at_least_fifteen_distinct_bad_inputs():
    assert len({i for i, _, _ in BAD_INPUTS}) + len(BAD_CHOICES) >= 15


def test_several_problems_are_all_reported_at_once(tmp_path, capfd):
    with pytest.raises(FailedHookException):
        render({"dev_catalog": "dev-x", "author_email": "nope", "project_slug": "Bad Slug"}, tmp_path)
    err = capfd.readouterr().err
    assert {"dev_catalog", "author_email", "project_slug"} == {
        line.split()[1].rstrip(":") for line in err.splitlines() if line.startswith("ERROR ")}
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize(("answer", "message"), [
    ("dev_catalog=dev-catalog", "ERROR dev_catalog: 'dev-catalog' is not a valid Unity Catalog name"),
    # An empty name must not render an empty folder name (the output folder itself).
    ("project_name=", "ERROR project_name: '' is empty. Fix:"),
])
def test_cookiecutter_cli_exits_non_zero_and_leaves_nothing(tmp_path, answer, message):
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", str(tmp_path), answer],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert message in result.stderr and "already exists" not in result.stderr
    assert_nothing_written(tmp_path)


def test_undeclared_key_is_rejected_with_a_suggestion(tmp_path):
    with pytest.raises(UnknownOptionError, match=r"'include_monitor' \(did you mean 'include_monitoring'\?\)"):
        render({"include_monitor": "no"}, tmp_path)
    assert_nothing_written(tmp_path)


def test_config_file_with_undeclared_key_is_rejected(tmp_path):
    config = tmp_path / "team.yaml"
    config.write_text("default_context:\n  cloud: aws\n  computee: job_clusters\n")
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([sys.executable, str(TEMPLATE / "scripts" / "render.py"), "--config", str(config),
                             "-o", str(out)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "team.yaml: unknown option(s) 'computee' (did you mean 'compute'?)" in result.stderr
    assert_nothing_written(out)
