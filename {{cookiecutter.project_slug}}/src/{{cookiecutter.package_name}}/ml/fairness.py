"""The fairness checks of the validation gate: for each sensitive column of the contract, the
candidate's metrics per group of the holdout (Fairlearn's ``MetricFrame``) and the largest gap
between two groups, bounded by ``validation.fairness.max_difference``.

Groups smaller than ``min_group_rows`` are reported but left out of the gap: a metric on a handful
of rows is noise, and a gate that fails on noise gets turned off.  A metric a group cannot have
(AUC of a group with one class) is reported as missing and left out the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..config import FairnessGate


def _auc(truth: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, proba)) if len(np.unique(truth)) == 2 else float("nan")


def _rmse(truth: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((truth - pred) ** 2)))


def group_metric_functions(problem_type: str) -> dict[str, dict[str, Any]]:
    """The group metrics by the model output they read: functions of (truth, that output)."""
    from fairlearn.metrics import false_positive_rate, selection_rate, true_positive_rate
    from sklearn.metrics import mean_absolute_error

    if problem_type == "classification":
        return {"prediction": {"selection_rate": selection_rate, "true_positive_rate": true_positive_rate,
                               "false_positive_rate": false_positive_rate},
                "probability": {"auc": _auc}}
    return {"prediction": {"mae": mean_absolute_error, "rmse": _rmse}}


def group_metrics(problem_type: str, truth: np.ndarray, output: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    """One row per group of ``groups``: its row count and every group metric, computed by Fairlearn
    (one ``MetricFrame`` per model output the metrics read)."""
    from fairlearn.metrics import MetricFrame

    labels = groups.astype("string").fillna("(missing)")
    frames = [MetricFrame(metrics=functions, y_true=truth, y_pred=output[column].to_numpy(),
                          sensitive_features=labels.to_numpy()).by_group
              for column, functions in group_metric_functions(problem_type).items()]
    table = pd.concat([labels.value_counts().rename("rows"), *frames], axis=1)
    table.index.name = "group"
    return table.sort_index()


def fairness_checks(problem_type: str, holdout: pd.DataFrame, truth: np.ndarray, output: pd.DataFrame,
                    columns: list[str], gate: FairnessGate) -> list[dict[str, Any]]:
    """One check per sensitive column and limited metric: the largest gap between two gated groups.
    Every check carries the whole per-group table, so the report shows what was compared."""
    checks = []
    for column in columns:
        table = group_metrics(problem_type, truth, output, holdout[column].reset_index(drop=True))
        gated = table[table["rows"] >= gate.min_group_rows]
        groups = {str(g): {k: (None if pd.isna(v) else round(float(v), 5)) for k, v in row.items()}
                  for g, row in table.iterrows()}
        for metric, limit in gate.max_difference.items():
            values = gated[metric].dropna()
            gap = float(values.max() - values.min()) if len(values) >= 2 else None
            check = {"check": f"fairness {metric} gap across {column} (max {limit:g})", "value": gap,
                     "max_difference": limit, "column": column, "metric": metric, "groups": groups,
                     "passed": gap is None or gap <= limit}
            if gap is not None:
                check.update(low_group=str(values.idxmin()), high_group=str(values.idxmax()))
            checks.append(check)
    return checks


def fairness_section(checks: list[dict[str, Any]], min_group_rows: int) -> list[str]:
    """Model-card lines: per sensitive column, each group's metrics on the holdout, then each gap
    against its limit.  Empty when no fairness check ran."""
    fairness = [c for c in checks if "max_difference" in c]
    if not fairness:
        return []
    lines = ["## Fairness (validation gate, same holdout)"]
    for column in dict.fromkeys(c["column"] for c in fairness):
        of_column = [c for c in fairness if c["column"] == column]
        groups = of_column[0]["groups"]
        metrics = [k for k in next(iter(groups.values())) if k != "rows"]
        lines += [f"`{column}` (groups under {min_group_rows} rows are shown, not gated):", "",
                  "| group | rows | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 2) + "|"]
        for group, values in groups.items():
            cells = ["-" if values[m] is None else f"{values[m]:.4f}" for m in metrics]
            lines.append(f"| {group} | {int(values['rows'])} | " + " | ".join(cells) + " |")
        lines.append("")
        for check in of_column:
            gap = "missing" if check["value"] is None else f"{check['value']:.4f}"
            lines.append(f"- {check['metric']} gap {gap} (max {check['max_difference']:g}): "
                         + ("ok" if check["passed"] else "FAILED"))
        lines.append("")
    return lines[:-1]
