"""Naive baselines on the validation holdout: what predictions without a model would score.

An absolute bound (``mape <= 0.5``) says little about whether a model is worth serving; losing to
"the same as last period" says a lot.  The validation gate therefore compares the candidate with
these baselines on the same holdout rows:

* classification: the prior (every row gets the training rows' positive rate);
* regression over time: the last value (the same entity's most recent label from an earlier
  period) and the seasonal naive value (the same entity's label ``season_length`` periods earlier;
  periods are the distinct sorted values of the timestamp);
* regression on a snapshot (a single period): the training mean.

A row with no earlier value for its entity gets the training mean, and each baseline reports how
many rows did.  No baseline ever reads a row's own label or a label from its period or later:
only the training rows' labels and strictly earlier periods of the same entity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..names import LABEL
from .metrics import evaluate
from .scoring import predictions

PERIOD = "_period"
# The baselines that read earlier labels, and so may have to fall back to the training mean.
FROM_HISTORY = ("last_value", "seasonal_naive")
# F1 is not reported: a constant predictor's F1 depends only on an arbitrary cut-off.
UNREPORTED = {"f1"}


@dataclass(frozen=True)
class NaiveBaseline:
    """One baseline's metrics on the holdout, and how many of its rows fell back to the training mean."""

    name: str
    metrics: dict[str, float]
    rows: int
    fallback_rows: int = 0


def training_rows(history: pd.DataFrame, holdout: pd.DataFrame, keys: list[str], timestamp: str) -> pd.DataFrame:
    """The labelled rows of ``history`` that are not in the holdout: the only source of a constant."""
    held = holdout[[*keys, timestamp]].drop_duplicates().assign(_held=True)
    marked = history[[*keys, timestamp]].merge(held, on=[*keys, timestamp], how="left")
    return history[marked["_held"].isna().to_numpy() & history[LABEL].notna().to_numpy()]


def period_numbers(history: pd.DataFrame, rows: pd.DataFrame, timestamp: str) -> np.ndarray:
    """Each row's position among the distinct sorted timestamps of ``history`` (-1 when absent):
    "one period earlier" is one position earlier, whatever the calendar gap."""
    periods = pd.Index(np.sort(history[timestamp].dropna().unique()))
    return periods.get_indexer(rows[timestamp])


def _labels_by_period(history: pd.DataFrame, keys: list[str], timestamp: str) -> pd.DataFrame:
    """One label per entity and period (their mean, should a key repeat within a period)."""
    known = history[history[LABEL].notna()]
    known = known[[*keys, LABEL]].assign(**{PERIOD: period_numbers(history, known, timestamp)})
    return known.groupby([*keys, PERIOD], dropna=False, as_index=False)[LABEL].mean()


def last_value(history: pd.DataFrame, rows: pd.DataFrame, keys: list[str], timestamp: str) -> np.ndarray:
    """For each of ``rows``, the same entity's most recent label from a strictly earlier period of
    ``history``; NaN when the entity has none."""
    known = _labels_by_period(history, keys, timestamp).sort_values(PERIOD, kind="mergesort")
    asked = rows[keys].assign(**{PERIOD: period_numbers(history, rows, timestamp), "_row": np.arange(len(rows))})
    matched = pd.merge_asof(asked.sort_values(PERIOD, kind="mergesort"), known, on=PERIOD, by=keys or None,
                            direction="backward", allow_exact_matches=False)  # no keys: one series
    return matched.sort_values("_row")[LABEL].to_numpy(dtype=float)


def seasonal_naive(history: pd.DataFrame, rows: pd.DataFrame, keys: list[str], timestamp: str,
                   season_length: int) -> np.ndarray:
    """For each of ``rows``, the same entity's label exactly ``season_length`` periods earlier;
    NaN when it has none."""
    if season_length < 1:
        raise ValueError(f"season_length must be at least 1 period, not {season_length}")
    known = _labels_by_period(history, keys, timestamp)
    known[PERIOD] += season_length  # the period each label is the seasonal forecast of
    asked = rows[keys].assign(**{PERIOD: period_numbers(history, rows, timestamp)})
    matched = asked.merge(known, on=[*keys, PERIOD], how="left")
    return matched[LABEL].to_numpy(dtype=float)


def baseline_predictions(history: pd.DataFrame, holdout: pd.DataFrame, keys: list[str], timestamp: str,
                         problem_type: str, season_length: int | None = None) -> dict[str, tuple[np.ndarray, int]]:
    """Each applicable baseline's prediction for every ``holdout`` row (a subset of ``history``, the
    labelled frame the holdout was split from), and how many rows fell back to the training mean."""
    train = training_rows(history, holdout, keys, timestamp)
    if train.empty:
        raise ValueError("naive baselines need training rows outside the holdout; every labelled row is held out")
    constant = float(train[LABEL].astype(float).mean())
    if problem_type == "classification":
        return {"prior": (np.full(len(holdout), constant), 0)}
    if history[timestamp].nunique() < 2:
        return {"mean": (np.full(len(holdout), constant), 0)}
    earlier = {"last_value": last_value(history, holdout, keys, timestamp)}
    if season_length:
        earlier["seasonal_naive"] = seasonal_naive(history, holdout, keys, timestamp, season_length)
    return {name: (np.where(np.isnan(values), constant, values), int(np.isnan(values).sum()))
            for name, values in earlier.items()}


def naive_baselines(history: pd.DataFrame, holdout: pd.DataFrame, keys: list[str], timestamp: str,
                    problem_type: str, season_length: int | None = None) -> list[NaiveBaseline]:
    """Every applicable baseline scored on the ``holdout`` rows with the model's own metrics."""
    truth = holdout[LABEL].to_numpy(dtype=float)
    found = []
    for name, (predicted, fallback_rows) in baseline_predictions(history, holdout, keys, timestamp, problem_type,
                                                                 season_length).items():
        metrics = evaluate(problem_type, truth, predictions(predicted, problem_type))
        found.append(NaiveBaseline(name, {k: v for k, v in metrics.items() if k not in UNREPORTED}, len(truth),
                                   fallback_rows))
    return found


def naive_baseline_metrics(baselines: list[NaiveBaseline]) -> dict[str, float]:
    """MLflow metric names and values: ``baseline_<name>_<metric>``, and ``baseline_<name>_fallback_rows``
    for the baselines that read earlier labels."""
    figures = {}
    for baseline in baselines:
        figures.update({f"baseline_{baseline.name}_{k}": v for k, v in baseline.metrics.items()})
        if baseline.name in FROM_HISTORY:
            figures[f"baseline_{baseline.name}_fallback_rows"] = float(baseline.fallback_rows)
    return figures
