"""``score_frame``, the path of every batch the project scores, on both engines: each row keeps its
own columns untouched and gets exactly the outputs the logged model gives it in process."""

from __future__ import annotations

import json
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from test_training import CONFIG, frame

from {{ cookiecutter.package_name }}.ml.fitting import fit
from {{ cookiecutter.package_name }}.ml.flavor import EstimatorModel, model_code, predict_with
from {{ cookiecutter.package_name }}.ml.scoring import pyfunc_input, score_frame
from {{ cookiecutter.package_name }}.names import SCORE_COLUMNS


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, list[str], pd.DataFrame]:
    """A model saved as the train stage logs it (estimator text, meta, a signature over the features
    with an integer column), and a batch with keys, a timestamp, a null and an unseen category."""
    base = tmp_path_factory.mktemp("scoring")
    training = frame().assign(visits=lambda f: (f["spend"] // 10).astype("int64"))
    model = fit(training, ["customer"], "month", "classification", CONFIG)
    (base / "model.txt").write_text(model.estimator.dumps())
    (base / "meta.json").write_text(json.dumps(model.meta))
    features = pyfunc_input(training[model.meta["features"]])
    assert "visits" in features, "the signature must see the integer column"
    mlflow.pyfunc.save_model(base / "model", python_model=model_code(str(base), EstimatorModel),
                             artifacts={"model": str(base / "model.txt"), "meta": str(base / "meta.json")},
                             signature=infer_signature(features, predict_with(model.estimator, model.meta, features)),
                             pip_requirements=["mlflow"])
    batch = frame(rows=300, seed=11).assign(visits=lambda f: (f["spend"] // 10).astype("int64"))
    batch.loc[3, "spend"] = np.nan
    batch.loc[5, "plan"] = "enterprise"
    return str(base / "model"), (base / "mlruns").as_uri(), model.meta["features"], batch


@pytest.mark.parametrize("lane", [pytest.param("jvm_spark", marks=pytest.mark.jvm),
                                  pytest.param("sail_spark", marks=pytest.mark.sail)])
def test_every_row_keeps_its_columns_and_gets_the_in_process_outputs(lane: str, logged: Any,
                                                                      request: pytest.FixtureRequest) -> None:
    location, tracking, features, batch = logged
    spark = request.getfixturevalue(lane)
    # Eight partitions by a column of three values: uneven batches, and empty partitions yield nothing.
    df = spark.createDataFrame(batch).repartition(8, "plan")
    scored = score_frame(df, location, "classification", tracking, tracking).toPandas()

    assert list(scored.columns) == list(batch.columns) + SCORE_COLUMNS["classification"]
    assert len(scored) == len(batch) and scored["customer"].is_unique
    scored = scored.set_index("customer").loc[batch["customer"]].reset_index()
    pd.testing.assert_frame_equal(scored[batch.columns], batch, check_dtype=False)
    expected = mlflow.pyfunc.load_model(location).predict(pyfunc_input(batch[features]))
    for column in SCORE_COLUMNS["classification"]:
        assert np.allclose(scored[column], expected[column], equal_nan=True), column
