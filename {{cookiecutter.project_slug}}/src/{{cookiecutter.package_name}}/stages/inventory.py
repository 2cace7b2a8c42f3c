"""The inventory stage: one row per registered version of the project's model in ``model_inventory``,
for whoever asks what is serving, what it was made from, who approved it and whether it is used.

A row holds what the registry knows of the version (aliases, validation and approval tags), what its
training run logged (metrics, the Delta versions of its training data, the git commit), what its
logged model carries (the package's own copy and the pinned requirements it was trained with), the
entries of the alias audit trail about it, and when it last scored.  The model's rows are replaced
on every run, so a rerun never duplicates them.  ``run all`` ends with this stage; on Databricks a
daily job (resources/inventory_job.yml) keeps the table current between trainings.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import functions as F

from .. import __version__
from ..context import RunContext, StageOutput
from ..ml.metrics import MAIN_METRIC
from ..ml.registry import mlflow_client
from ..names import INFERENCE_TABLE, INVENTORY_TABLE, PACKAGE
from ..runtime import Runtime

# This module's stages and their positions in `run all` (see pipeline.py).
ORDER = {"inventory": 120}

# The libraries whose versions each row records (pip names).
LIBRARIES = ("mlflow", "lightgbm", "scikit-learn", "pandas", "numpy", "pyarrow", "pyspark")

INVENTORY_SCHEMA = (
    "model_name string, version bigint, aliases array<string>, validation_status string, validation_mode string, "
    "approval string, approved_by string, approved_at string, approval_reason string, run_id string, "
    "pipeline_run_id string, registered_at timestamp, main_metric string, main_metric_value double, "
    "metrics map<string,double>, training_data_versions map<string,bigint>, git_commit string, "
    "package_version string, library_versions map<string,string>, versions_from string, alias_history string, "
    "last_scored_at timestamp, inventoried_at timestamp, inventory_run_id string")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: str) -> dict[str, str]:
    """``name==version`` lines of a requirements file, by normalised name."""
    found = {}
    for line in requirements.splitlines():
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*==\s*([^\s;#,]+)", line)
        if match:
            found[_normalized(match[1])] = match[2]
    return found


def installed(library: str) -> str | None:
    """The version installed in this environment, or None when the library is not installed."""
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return None


def logged_file(name: str, version: str, path: str) -> str | None:
    """A small file of the version's logged model, or None when it has none or it cannot be read."""
    import mlflow

    try:
        with tempfile.TemporaryDirectory(prefix="inventory-") as folder:
            local = mlflow.artifacts.download_artifacts(f"models:/{name}/{version}/{path}", dst_path=folder)
            return Path(local).read_text(encoding="utf-8")
    except Exception:  # MLflow raises several types for a missing artifact
        return None


def environment(name: str, version: str, today: str) -> tuple[str, dict[str, str], str]:
    """The package and library versions the version was trained with, and where each came from.  Its
    logged model carries the package's own copy (``code/<package>/__init__.py``) and the pins of
    requirements/base.txt; what those do not pin (pyspark: the Databricks runtime provides it) is
    the version installed when the version is first inventoried, usually by the run that trained it."""
    code = logged_file(name, version, f"code/{PACKAGE}/__init__.py") or ""
    package = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", code, re.MULTILINE)
    pinned = pins(logged_file(name, version, "requirements.txt") or "")
    libraries = {lib: pinned.get(lib) or installed(lib) for lib in LIBRARIES}
    trained = (["package"] if package else []) + [lib for lib in LIBRARIES if lib in pinned]
    later = ([] if package else ["package"]) + [lib for lib in LIBRARIES if lib not in pinned]
    sources = ([f"the logged model (training): {', '.join(trained)}"] if trained else []) + (
        [f"installed at its first inventory ({today}): {', '.join(later)}"] if later else [])
    return (package[1] if package else __version__), {k: v for k, v in libraries.items() if v}, "; ".join(sources)


def recorded_environments(rt: Runtime, name: str) -> dict[int, tuple[str, dict[str, str], str]]:
    """What earlier inventories read from each version's logged model: it never changes, so it is read once."""
    if not rt.exists(INVENTORY_TABLE):
        return {}
    rows = (rt.read(INVENTORY_TABLE).where(F.col("model_name") == name)
            .select("version", "package_version", "library_versions", "versions_from").collect())
    return {int(r["version"]): (r["package_version"], dict(r["library_versions"] or {}), r["versions_from"])
            for r in rows if r["versions_from"]}


def last_scored(rt: Runtime, name: str) -> dict[str, datetime]:
    """The latest ``scored_at`` of each version in the inference table (any alias, shadow scoring included)."""
    if not rt.exists(INFERENCE_TABLE):
        return {}
    rows = (rt.read(INFERENCE_TABLE).where(F.col("model_name") == name).groupBy("model_version")
            .agg(F.max("scored_at").alias("at")).collect())
    return {str(r["model_version"]): r["at"] for r in rows}


def training_data(version: Any, run: Any) -> dict[str, int]:
    """Delta versions of the training tables: the version's ``data_versions`` tag, else its run's logged inputs."""
    try:
        return {str(t): int(v) for t, v in json.loads(version.tags.get("data_versions") or "").items()
                if v is not None}
    except (ValueError, TypeError, AttributeError):
        pass
    found = {}
    for item in (run.inputs.dataset_inputs if run is not None and run.inputs else []):
        try:
            source = json.loads(item.dataset.source)
        except (ValueError, TypeError):
            continue
        if isinstance(source, dict) and source.get("delta_table_version") is not None:
            found[str(item.dataset.name)] = int(source["delta_table_version"])
    return found


def _utc(milliseconds: int | None) -> datetime | None:
    """MLflow's epoch milliseconds as the naive UTC timestamps the project's tables hold."""
    return None if milliseconds is None else datetime.fromtimestamp(milliseconds / 1000, UTC).replace(tzinfo=None)


def run(rt: Runtime, ctx: RunContext) -> StageOutput:
    """Rewrite the model's rows; a model with no version yet is skipped (a fresh deployment's daily job)."""
    rt.configure_mlflow()
    client, name = mlflow_client(), ctx.model_name
    numbers = sorted({int(v.version) for v in client.search_model_versions(f"name = '{name}'")})
    if not numbers:
        return StageOutput(details={"model": name, "versions": 0,
                                    "skipped": f"{name} has no registered version yet: nothing to inventory"})
    model = client.get_registered_model(name)
    aliases: dict[str, list[str]] = {}
    for alias, number in model.aliases.items():
        aliases.setdefault(str(number), []).append(str(alias))
    history = json.loads(model.tags.get("alias_history") or "[]")
    scored, recorded = last_scored(rt, name), recorded_environments(rt, name)
    now = datetime.now(UTC).replace(tzinfo=None)
    main = MAIN_METRIC[ctx.project.problem_type]
    rows = []
    for number in numbers:
        version = client.get_model_version(name, str(number))
        tags = version.tags
        try:
            training = client.get_run(version.run_id) if version.run_id else None
        except Exception:  # a deleted run: the row keeps what the registry knows
            training = None
        metrics = {k: float(v) for k, v in (training.data.metrics if training else {}).items() if math.isfinite(v)}
        commit = (training.data.tags.get("mlflow.source.git.commit") if training else None) or tags.get("git_commit")
        package, libraries, versions_from = recorded.get(number) or environment(name, str(number), f"{now:%Y-%m-%d}")
        trail = [h for h in history if str(number) in (h.get("version"), h.get("from"))]
        rows.append((name, number, sorted(aliases.get(str(number), [])), tags.get("validation_status"),
                     tags.get("validation_mode"), tags.get("approval"), tags.get("approved_by"),
                     tags.get("approved_at"), tags.get("approval_reason"), version.run_id, tags.get("pipeline_run_id"),
                     _utc(version.creation_timestamp), main, metrics.get(main), metrics,
                     training_data(version, training), None if commit in (None, "", "unknown") else commit, package,
                     libraries, versions_from, json.dumps(trail), scored.get(str(number)), now, ctx.run_id))
    rt.replace_matching(rt.spark.createDataFrame(rows, INVENTORY_SCHEMA), INVENTORY_TABLE,
                        rt.spark.createDataFrame([(name,)], "model_name string"))
    ctx.log(f"  inventory: {len(rows)} version(s) of {name} in {rt.table(INVENTORY_TABLE)}")
    return StageOutput([INVENTORY_TABLE], {
        "model": name, "versions": len(rows),
        "aliases": ", ".join(f"{a}={v}" for v, names in sorted(aliases.items()) for a in sorted(names)) or "none",
        "never_scored": ", ".join(str(n) for n in numbers if str(n) not in scored) or "none"})
