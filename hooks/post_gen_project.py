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
    "notebooks/serving": CONTEXT["include_serving"] == "yes",
    f"src/{PACKAGE}/stages/deploy_serving.py": CONTEXT["include_serving"] == "yes",
    "tests/test_deploy_serving.py": CONTEXT["include_serving"] == "yes",
    f"src/{PACKAGE}/tools/serve.py": CONTEXT["include_serving"] == "yes",
    "tests/test_serving.py": CONTEXT["include_serving"] == "yes",
    "resources/serving_dashboard.yml": CONTEXT["include_serving"] == "yes",
    "resources/dashboards/serving.lvdash.json": CONTEXT["include_serving"] == "yes",
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


def unparsable_files(root: Path) -> list[str]:
    """Every rendered YAML, JSON or TOML file that does not parse, as 'path:line:column: problem'.

    Answers are validated and written as quoted scalars, so this should never fire; it turns a
    template bug or an unforeseen answer into a failed render instead of a broken databricks.yml."""
    import tomllib

    import yaml  # a dependency of cookiecutter itself

    problems = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix not in (".yml", ".yaml", ".json", ".toml"):
            continue
        rel = path.relative_to(root)
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix == ".toml":
                tomllib.loads(text)
            elif path.suffix == ".json":
                json.loads(text)
            else:
                yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{mark.line + 1}:{mark.column + 1}" if mark else "?"
            problems.append(f"{rel}:{where}: {exc.problem or exc}")
        except json.JSONDecodeError as exc:
            problems.append(f"{rel}:{exc.lineno}:{exc.colno}: {exc.msg}")
        except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
            problems.append(f"{rel}: {exc}")
    return problems


def main() -> int:
    root = Path.cwd()
    prune(root)
    problems = unparsable_files(root)
    for line in problems:
        print(f"ERROR rendered file does not parse: {line}. Fix: report it with your answers "
              "(.cookiecutter.json is not written); no project was kept", file=sys.stderr)
    if problems:
        return 1
    write_answers(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
