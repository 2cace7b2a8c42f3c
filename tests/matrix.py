"""The option matrix: the full product over options that interact, ``itertools.cycle`` over
independent ones (the cookiecutter-data-science approach).

Choices are read from cookiecutter.json, so a new choice value joins the matrix by itself;
every choice option must be listed in exactly one group below (tests/test_matrix.py
checks it), so a renamed or new option cannot silently drop out.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parents[1]
OPTIONS: dict[str, Any] = json.loads((TEMPLATE / "cookiecutter.json").read_text(encoding="utf-8"))
CHOICES = {key: value for key, value in OPTIONS.items() if isinstance(value, list) and not key.startswith("_")}

# Options that change which files exist or how they connect: all combinations.
INTERACTING = ("problem_type", "include_feature_store", "compute")
# Options whose values can be tested in any pairing: cycled through the combinations.
INDEPENDENT = ("cloud", "cicd_platform", "include_monitoring", "include_serving", "python_version")

# Short names used in combination ids (and golden manifest file names).
ABBREVIATIONS = {
    "classification": "clf", "regression": "reg", "serverless": "sls", "job_clusters": "jc",
    "github_actions": "gha", "azure_devops": "ado", "both": "both", "none": "noci",
}


def combinations() -> list[dict[str, str]]:
    product = list(itertools.product(*(CHOICES[key] for key in INTERACTING)))
    cycles = [itertools.cycle(CHOICES[key]) for key in INDEPENDENT]
    combos = []
    for values in product:
        combo = dict(zip(INTERACTING, values, strict=True))
        combo.update({key: next(cycle) for key, cycle in zip(INDEPENDENT, cycles, strict=True)})
        combos.append(combo)
    return combos


def combo_id(context: dict[str, str]) -> str:
    parts = []
    for key in (*INTERACTING, *INDEPENDENT):
        value = context[key]
        if key == "include_feature_store":
            parts.append("fs" if value == "yes" else "nofs")
        elif key == "include_monitoring":
            parts.append("mon" if value == "yes" else "nomon")
        elif key == "include_serving":
            parts.append("srv" if value == "yes" else "nosrv")
        elif key == "python_version":
            parts.append("py" + value.replace(".", ""))
        else:
            parts.append(ABBREVIATIONS.get(value, value))
    return "-".join(parts)


COMBINATIONS = combinations()


def load_hook(name: str, context: dict) -> dict:
    """Execute a hook's module body with a given context instead of the rendered one."""
    source = (TEMPLATE / "hooks" / name).read_text()
    source = re.sub(r"json\.loads\(\{\{.*?\}\}\)", "json.loads(CONTEXT_JSON)", source)
    namespace = {"__name__": "hook", "CONTEXT_JSON": json.dumps(context)}
    exec(compile(source, name, "exec"), namespace)
    return namespace
