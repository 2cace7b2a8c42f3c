"""PSI against an independent pandas computation on the JVM engine (the Spark that runs on
Databricks), and drift on sample batches on the local engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.config import load_project
from {{ cookiecutter.package_name }}.contract import load_contracts
from {{ cookiecutter.package_name }}.data.drift import EPSILON, drift, fit_baseline, psi
from {{ cookiecutter.package_name }}.tools.sample_data import sample_frame

PROJECT = Path(__file__).resolve().parents[1]


def reference_psi(expected: pd.Series, actual: pd.Series, edges: list[float]) -> float:
    """PSI with pandas binning, independent of the Spark aggregation: non-null values only."""
    bins = [-np.inf, *edges, np.inf]

    def shares(values: pd.Series) -> np.ndarray:
        counts = pd.cut(values.dropna(), bins=bins, right=True).value_counts(sort=False).to_numpy(dtype=float)
        return counts / counts.sum()

    e, a = np.clip(shares(expected), EPSILON, None), np.clip(shares(actual), EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def test_psi_formula_edge_cases():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([0.25, 0.75], [0.75, 0.25]) == pytest.approx(2 * 0.5 * np.log(3))
    assert psi([1.0, 0.0], [0.0, 1.0]) == pytest.approx(2 * (1 - EPSILON) * np.log(1 / EPSILON))
    with pytest.raises(ValueError, match="same bins"):
        psi([1.0], [0.5, 0.5])


@pytest.mark.jvm
def test_psi_equals_a_reference_computation(jvm_spark):
    rng = np.random.default_rng(3)
    base = pd.DataFrame({"x": rng.normal(0, 1, 6_000), "c": rng.choice(["a", "b", "c"], 6_000, p=[.5, .3, .2])})
    base.loc[rng.random(6_000) < 0.05, "x"] = np.nan
    new = pd.DataFrame({"x": rng.normal(0.6, 1.3, 3_000), "c": rng.choice(["a", "b", "d"], 3_000, p=[.3, .3, .4])})
    baseline = fit_baseline(jvm_spark.createDataFrame(base), ["x", "c"], bins=10)
    spec = {c["name"]: c for c in baseline["columns"]}
    assert 5 <= len(spec["x"]["edges"]) <= 9
    assert np.allclose(spec["x"]["edges"], np.nanquantile(base["x"], np.arange(1, 10) / 10)[:len(spec["x"]["edges"])],
                       atol=0.05)
    assert spec["x"]["proportions"][-1] == pytest.approx(base["x"].isna().mean())
    results = {r.column: r for r in drift(jvm_spark.createDataFrame(new), baseline, threshold=0.2)}
    assert results["x"].psi == pytest.approx(reference_psi(base["x"], new["x"], spec["x"]["edges"]), abs=1e-9)

    categories = spec["c"]["categories"]
    assert categories == ["a", "b", "c"]

    def shares(values: pd.Series) -> np.ndarray:
        mapped = values.where(values.isin(categories), "other")
        return mapped.value_counts(normalize=True).reindex([*categories, "other"], fill_value=0).to_numpy()

    e, a = np.clip(shares(base["c"]), EPSILON, None), np.clip(shares(new["c"]), EPSILON, None)
    assert results["c"].psi == pytest.approx(float(np.sum((a - e) * np.log(a / e))), abs=1e-9)
    assert results["x"].drifted and results["c"].drifted and results["x"].rows == 3_000


def typed_sample(source: str, rows: int, drift: bool, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """Sample records with the contract's numeric columns as numbers; the monitored columns."""
    contract = load_contracts(PROJECT)[source]
    frame = sample_frame(source, rows, drift=drift, seed=seed)
    numeric = [c.name for c in contract.columns if c.type in ("int", "double") and c.name in frame.columns
               and c.name != (contract.label.column if contract.label else None)]
    for name in numeric:
        frame[name] = pd.to_numeric(frame[name].astype(str).str.replace(",", ""), errors="coerce")
    categorical = [c.name for c in contract.columns if c.categorical and c.name in frame.columns]
    return frame[numeric + categorical], numeric + categorical


@pytest.mark.sail
def test_drift_is_flagged_on_the_drifted_batch_and_not_on_a_fresh_one(sail_spark):
    source = load_project(PROJECT).source
    training, columns = typed_sample(source, 4_000, drift=False, seed=11)
    fresh, _ = typed_sample(source, 4_000, drift=False, seed=12)
    drifted, _ = typed_sample(source, 4_000, drift=True, seed=13)
    baseline = fit_baseline(sail_spark.createDataFrame(training), columns)
    threshold = load_project(PROJECT).monitoring["psi_threshold"]
    stable = drift(sail_spark.createDataFrame(fresh), baseline, threshold)
    assert {r.column for r in stable} == set(columns)
    assert not [r.column for r in stable if r.drifted], {r.column: round(r.psi, 3) for r in stable}
    assert max(r.psi for r in stable) < 0.1
    shifted = [r.column for r in drift(sail_spark.createDataFrame(drifted), baseline, threshold) if r.drifted]
    assert shifted, "the drifted sample shifts feature distributions"


@pytest.mark.sail
def test_a_batch_too_small_to_tell_drift_from_noise_is_not_judged(sail_spark):
    """One row is a point mass: its PSI is huge in every column, which says nothing about drift."""
    rng = np.random.default_rng(5)
    base = pd.DataFrame({"x": rng.normal(0, 1, 2_000)})
    baseline = fit_baseline(sail_spark.createDataFrame(base), ["x"], bins=10)
    (one,) = drift(sail_spark.createDataFrame(base.head(1)), baseline, threshold=0.2, min_rows=100)
    assert one.psi > 0.2 and one.rows == 1 and not one.drifted
    (many,) = drift(sail_spark.createDataFrame(base.head(1) + 4.0).unionByName(
        sail_spark.createDataFrame(base.head(199) + 4.0)), baseline, threshold=0.2, min_rows=100)
    assert many.rows == 200 and many.drifted
