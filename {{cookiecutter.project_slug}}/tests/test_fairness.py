"""The fairness checks of the validation gate: Fairlearn's per-group metrics against a pandas
oracle, the gap between the groups large enough to gate, and the contract's rule that a sensitive
column reaches gold as it is."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }}.config import ConfigError, FairnessGate, load_project
from {{ cookiecutter.package_name }}.contract import load_contracts
from {{ cookiecutter.package_name }}.ml.fairness import fairness_checks, group_metrics


def scored_holdout(rows: int = 600, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """A holdout with a sensitive column of three groups (one tiny), labels and model outputs that
    favour group ``a``."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], size=rows)
    group[:8] = "c"
    truth = (rng.random(rows) < 0.3).astype(float)
    proba = np.clip(0.25 + 0.4 * truth + 0.15 * (group == "a") + rng.normal(0, 0.15, rows), 0, 1)
    output = pd.DataFrame({"prediction": (proba >= 0.5).astype(float), "probability": proba})
    return pd.DataFrame({"group": group, "plan": "basic"}), truth, output


def test_group_metrics_match_a_pandas_oracle():
    holdout, truth, output = scored_holdout()
    table = group_metrics("classification", truth, output, holdout["group"])
    frame = pd.DataFrame({"g": holdout["group"], "y": truth, "p": output["prediction"]})
    for name, rows in frame.groupby("g"):
        assert table.loc[name, "rows"] == len(rows)
        assert table.loc[name, "selection_rate"] == pytest.approx(rows["p"].mean())
        assert table.loc[name, "true_positive_rate"] == pytest.approx(rows.loc[rows["y"] == 1, "p"].mean())
        assert table.loc[name, "false_positive_rate"] == pytest.approx(rows.loc[rows["y"] == 0, "p"].mean())
    regression = group_metrics("regression", truth, output.assign(prediction=output["probability"]), holdout["group"])
    errors = (frame["y"] - output["probability"]).groupby(frame["g"])
    assert np.allclose(regression["mae"], errors.apply(lambda e: e.abs().mean()))
    assert np.allclose(regression["rmse"], errors.apply(lambda e: np.sqrt((e ** 2).mean())))


def test_the_gap_is_taken_over_groups_large_enough_and_a_limit_names_both_ends():
    holdout, truth, output = scored_holdout()
    table = group_metrics("classification", truth, output, holdout["group"])
    gate = FairnessGate({"selection_rate": 0.05, "auc": 0.5}, min_group_rows=30)
    selection, auc = fairness_checks("classification", holdout, truth, output, ["group"], gate)
    expected = abs(table.loc["a", "selection_rate"] - table.loc["b", "selection_rate"])
    assert selection["value"] == pytest.approx(expected) and expected > 0.05  # group c (8 rows) is not gated
    assert not selection["passed"] and {selection["high_group"], selection["low_group"]} == {"a", "b"}
    assert set(selection["groups"]) == {"a", "b", "c"} and selection["groups"]["c"]["rows"] == 8
    assert auc["passed"] and auc["value"] <= 0.5

    # A group with one class has no AUC: reported as missing, and with one group left there is no gap.
    one_class = truth.copy()
    one_class[holdout["group"] == "b"] = 0
    (check,) = fairness_checks("classification", holdout, one_class, output, ["group"], FairnessGate({"auc": 0.01}))
    assert check["groups"]["b"]["auc"] is None and check["value"] is None and check["passed"]


def test_a_sensitive_column_gold_does_not_carry_names_the_field_and_the_fix(make_root, tmp_path):
    root = make_root(tmp_path)
    path = root / "conf" / "contracts" / f"{load_project(root).source}.yml"
    contract = yaml.safe_load(path.read_text())
    contract["columns"]["group_probe"] = {"type": "string", "sensitive": True}
    path.write_text(yaml.safe_dump(contract, sort_keys=False))
    with pytest.raises(ConfigError, match=r"columns\.group_probe\.sensitive.*Fix: add `group_probe: "
                                          r"group_probe` to gold\.columns"):
        load_contracts(root)
