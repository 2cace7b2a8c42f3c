"""Prune what the chosen options do not use, then record the answers.

All pruning lives in the PRUNE table below: a path (relative to the generated project)
and the condition under which it is removed.  Templates never wrap whole files in
Jinja if-blocks, so a reviewer reads one table to know which files an option controls.
The answers are written to ``.cookiecutter.json`` in cookiecutter's replay format, so
the project can be re-rendered (``cookiecutter --replay-file``) or updated with cruft.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

CONTEXT: dict[str, object] = json.loads({{ cookiecutter | jsonify | tojson }})
PACKAGE = str(CONTEXT["package_name"])


def ci(platform: str) -> bool:
    """True when CI files for ``platform`` are wanted."""
    return CONTEXT["cicd_platform"] in (platform, "both")


# path -> keep it?  Every optional file or folder of the template is listed here.
PRUNE: dict[str, bool] = {
    ".github": ci("github_actions"),
    ".azure": ci("azure_devops"),
    "notebooks/features": CONTEXT["include_feature_store"] == "yes",
    "resources/feature_engineering_job.yml": CONTEXT["include_feature_store"] == "yes",
    "resources/monitoring.yml": CONTEXT["include_monitoring"] == "yes",
    "conf/contracts/churn_events.yml": CONTEXT["problem_type"] == "classification",
    "conf/expectations/churn_events.json": CONTEXT["problem_type"] == "classification",
    "conf/contracts/sales_events.yml": CONTEXT["problem_type"] == "regression",
    "conf/expectations/sales_events.json": CONTEXT["problem_type"] == "regression",
}

# Keys cookiecutter adds about this particular run, not answers worth replaying.
RUN_ONLY_KEYS = {"_output_dir", "_repo_dir", "_checkout"}


def prune(root: Path) -> list[str]:
    removed = []
    for rel, keep in PRUNE.items():
        path = root / rel
        if keep or not path.exists():
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(rel)
    return removed


def write_answers(root: Path) -> None:
    answers = {k: v for k, v in CONTEXT.items() if k not in RUN_ONLY_KEYS}
    text = json.dumps({"cookiecutter": answers}, indent=2, sort_keys=True) + "\n"
    (root / ".cookiecutter.json").write_text(text, encoding="utf-8")


def main() -> int:
    root = Path.cwd()
    prune(root)
    write_answers(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
