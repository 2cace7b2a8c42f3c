"""Turning a frame into model inputs and raw scores into predictions (pandas and numpy, shared by
training and the logged model), and scoring a Spark frame with a logged model (``score_frame``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..names import SCORE_COLUMNS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def prepare_features(frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]]) -> pd.DataFrame:
    """Columns in training order; categorical columns with the training categories; numbers as float."""
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ValueError(f"the input lacks feature columns {missing}")
    out = pd.DataFrame(index=frame.index)
    for name in features:
        if name in categories:
            out[name] = pd.Categorical(frame[name].astype("string"), categories=categories[name])
        else:
            out[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return out


def pyfunc_input(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer columns as doubles, as the logged signature declares them: a count column arrives
    as int64 (which MLflow will not narrow to double) or, with a missing value, as float."""
    integers = frame.select_dtypes("integer").columns
    if not len(integers):
        return frame
    out = frame.copy(deep=False)  # only the cast columns are new: a whole-frame astype copies every column
    for name in integers:
        out[name] = frame[name].astype("float64")
    return out


def signature_columns(model: Any) -> list[str]:
    """The input columns a logged model's signature declares, in order (none without a signature)."""
    schema = model.metadata.get_input_schema()
    return list(schema.input_names()) if schema is not None else []


def predict_logged(model: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """A logged model's outputs on the columns its signature declares, in that order: MLflow warns
    on every call about any other column (keys, timestamps, the label)."""
    names = signature_columns(model)
    selected = frame if not names or list(frame.columns) == names else frame[names]
    return model.predict(pyfunc_input(selected))


def predictions(raw: np.ndarray, problem_type: str, threshold: float = 0.5) -> pd.DataFrame:
    if problem_type == "classification":
        return pd.DataFrame({"prediction": (raw >= threshold).astype("int64"), "probability": raw.astype("float64")})
    return pd.DataFrame({"prediction": raw.astype("float64")})


def label_type(problem_type: str) -> str:
    """The label's type in the inference table: that of the prediction, as Lakehouse Monitoring expects."""
    return "int" if problem_type == "classification" else "double"


CHUNK_ROWS = 500_000


def score_frame(df: DataFrame, model_location: str, problem_type: str, tracking_uri: str,
                registry_uri: str) -> DataFrame:
    """Append the model's outputs to every row.  Each partition loads the model once, on its first
    batch, and predicts on chunks of up to ``CHUNK_ROWS`` rows: the engine hands over ~10k-row
    batches, and MLflow's per-call schema checks would cost more than the model on each.  Arrow in,
    Arrow out (``mapInArrow``): only the signature's columns become pandas, and the other columns
    pass through untouched instead of a round trip through pandas and back."""
    outputs = SCORE_COLUMNS[problem_type]
    schema = ", ".join([f"`{f.name}` {f.dataType.simpleString()}" for f in df.schema.fields]
                       + [f"{c} double" for c in outputs])

    def predict(batches: Iterator[Any]) -> Iterator[Any]:
        import mlflow
        import pyarrow as pa

        model, names, pending, rows = None, [], [], 0

        def scored() -> list[Any]:
            table = pa.Table.from_batches(pending)
            pending.clear()
            result = model.predict(pyfunc_input((table.select(names) if names else table).to_pandas()))
            for column in outputs:
                table = table.append_column(column, pa.array(result[column].to_numpy(dtype="float64")))
            return table.to_batches()

        for batch in batches:
            if model is None:
                mlflow.set_tracking_uri(tracking_uri)
                mlflow.set_registry_uri(registry_uri)
                model = mlflow.pyfunc.load_model(model_location)
                names = signature_columns(model)  # read once: only these columns become pandas
            pending.append(batch)
            rows += batch.num_rows
            if rows >= CHUNK_ROWS:
                yield from scored()
                rows = 0
        if pending:
            yield from scored()

    return df.mapInArrow(predict, schema=schema)
