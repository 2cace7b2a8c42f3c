"""MLflow tracking of a candidate: one run with parameters, metrics, Delta lineage, plots, the
model card and the logged model with explicit pins, then a registered version tagged
``validation_status=pending`` for the validation gate."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.data.spark_dataset import SparkDataset

from ..runtime import Runtime
from .candidates import Candidate
from .reports import release_figure
from .scoring import pyfunc_input

# The package folder, logged with the model so that it loads wherever it is served.
PACKAGE_DIR = Path(__file__).resolve().parents[1]


class CountedSparkDataset(SparkDataset):
    """A Spark dataset whose profile is its row count.  MLflow's own profile asks ``df.rdd``, which
    Spark Connect (the local engine, Databricks serverless) does not have, and warns on every run."""

    def __init__(self, dataset: SparkDataset) -> None:
        super().__init__(df=dataset.df, source=dataset.source, targets=dataset.targets, name=dataset.name,
                         digest=dataset.digest, predictions=dataset.predictions)
        self._rows = self.df.count()

    @property
    def profile(self) -> dict[str, int]:
        return {"approx_count": self._rows}


@dataclass
class Registered:
    """The registered version of a candidate and the run that logged it."""

    version: str
    run_id: str
    logging_seconds: float


def git_commit(root: Path) -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except OSError:
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def pip_requirements(root: Path) -> list[str]:
    """The runtime pins of requirements/base.txt: explicit, so logging skips the slow inference."""
    lines = (root / "requirements" / "base.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def model_environment(root: Path) -> dict[str, Any]:
    """The model's environment, given whole with the runtime pins: MLflow then neither infers the
    requirements nor looks up an installed pip to pin it (uv environments have none, so it warned)."""
    python = ".".join(str(part) for part in sys.version_info[:3])
    return {"name": "mlflow-env", "channels": ["conda-forge"],
            "dependencies": [f"python={python}", "pip", {"pip": pip_requirements(root)}]}


def log_documents(candidate: Candidate, data_gate: dict[str, Any]) -> None:
    """The plots, the model card, the training data gate and the candidate's other documents (its
    explanations), written together and logged in one call."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="documents-") as folder:
        root = Path(folder)
        for path, figure in candidate.figures.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(root / path)
            release_figure(figure)
        (root / "model_card.md").write_text(candidate.card, encoding="utf-8")
        (root / "validation").mkdir(exist_ok=True)
        (root / "validation" / "data_gate_training.json").write_text(json.dumps(data_gate, indent=2), encoding="utf-8")
        for path, document in candidate.documents.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(json.dumps(document, indent=2), encoding="utf-8")
        mlflow.log_artifacts(folder)


def log_and_register(rt: Runtime, candidate: Candidate, *, root: Path, commit: str, experiment: str,
                     model_name: str, pipeline_run_id: str, tags: dict[str, str], sources: list[dict[str, Any]],
                     data_gate: dict[str, Any], fit_seconds: float,
                     naive_baseline_metrics: dict[str, float] | None = None) -> Registered:
    """Log the candidate in one MLflow run of ``experiment`` and register it as a new version;
    ``naive_baseline_metrics`` (the naive baselines on the same holdout) are logged next to its metrics."""
    import mlflow
    from mlflow.models import infer_signature

    started = time.perf_counter()
    rt.configure_mlflow()
    rt.use_experiment(experiment)
    with mlflow.start_run(run_name=f"train-{pipeline_run_id[:8]}") as run:
        mlflow.set_tags({"mlflow.source.git.commit": commit, "pipeline_run_id": pipeline_run_id, **tags})
        mlflow.log_params({**candidate.params, **candidate.split})
        for run_name, params, metrics in candidate.nested:
            with mlflow.start_run(run_name=run_name, nested=True):
                mlflow.log_params(params)
                mlflow.log_metrics(metrics)
        mlflow.log_metrics({**candidate.metrics, **(naive_baseline_metrics or {}), "fit_seconds": fit_seconds})
        for source in sources:
            mlflow.log_input(CountedSparkDataset(rt.lineage_dataset(source["short"], source["version"])),
                             context="training")
        log_documents(candidate, data_gate)
        # Integer columns cannot hold missing values at scoring time: declare them as doubles.
        example = pyfunc_input(candidate.example)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=candidate.python_model, artifacts=candidate.artifacts,
            code_paths=[str(PACKAGE_DIR)], signature=infer_signature(example, candidate.example_output),
            input_example=example, conda_env=model_environment(root))
        # Born with its tags: a crash right after registering leaves a version that is pending and
        # names its run, which the next training marks abandoned, never one without a status.
        version_tags = {"git_commit": commit, "validation_status": "pending", "pipeline_run_id": pipeline_run_id,
                        "data_gate_training": f"passed ({data_gate['expectations']} expectations)",
                        "data_versions": json.dumps({s["table"]: s["version"] for s in sources}),
                        **{f"metric_{k}": f"{v:.6g}" for k, v in candidate.metrics.items()}}
        version = mlflow.register_model(info.model_uri, model_name, tags=version_tags)
        mlflow.MlflowClient().update_model_version(model_name, version.version, description=candidate.card)
        seconds = time.perf_counter() - started
        mlflow.log_metric("mlflow_logging_seconds", seconds)
    return Registered(str(version.version), run.info.run_id, seconds)
