"""Print the template's performance figures and write them to build/bench.json; nothing here asserts them.

Wall-clock figures are medians over ``--runs`` runs; every ratio is measured in the same run.

* profile: import time of the heavy libraries a command loads, and the start of the embedded engine;
* render: one cookiecutter render;
* generated suite: the default project's own tests as ``nox -s tests`` runs them (``-n 2``), after one
  uncounted run that records the JVM's class archive, goal <= 45 s;
* run all: ``run all --target local`` on a fresh default project (sample data written first), with
  the seconds of every stage, goal <= 30 s and silver <= 3 s;
* ingestion: ``bench ingest --json``: bronze -> gold against a typed single-pass copy of the same
  records, goal <= 5x;
* training: ``bench train --json``: the MLflow share of a ~1M-row training, goal <= 10%;
* scoring: ``bench score --json``: the score stage's path against in-process predict, goal >= 0.7x;
* PSI: ``bench psi --json``;
* serving: ``bench serve --json``: loopback p50 / p99 and requests per second of the router against
  ``mlflow models serve`` alone on the same model (the router's overhead as a ratio).

    python scripts/bench.py [--runs 3] [--ingest-rows 1000000 --ingest-rows 10000000] [--out build/bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render import render

ROOT = Path(__file__).resolve().parents[1]
HEAVY_IMPORTS = ("pandas", "pyspark.sql.connect.session", "great_expectations", "mlflow", "lightgbm")


def seconds(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return elapsed, result.stdout


def median_of(runs: int, measure) -> dict[str, Any]:
    values = [measure() for _ in range(runs)]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": runs}


def shown(figure: dict[str, Any]) -> str:
    return f"median {figure['median']:.1f} s (min {figure['min']:.1f}, max {figure['max']:.1f}, {figure['runs']} runs)"


def profile(project: Path, env: dict[str, str]) -> dict[str, float]:
    """Seconds each heavy library adds to a fresh interpreter, and the engine start."""
    bare, _ = seconds([sys.executable, "-c", "pass"], project, env)
    figures = {}
    for module in HEAVY_IMPORTS:
        took, _ = seconds([sys.executable, "-c", f"import {module}"], project, env)
        figures[f"import {module}"] = took - bare
    package = next((project / "src").iterdir()).name
    code = (f"import time; from {package}.runtime import start_sail, stop_engine; t = time.perf_counter(); "
            "s, srv = start_sail(); s.range(1).collect(); print(time.perf_counter() - t); stop_engine(s, srv)")
    _, out = seconds([sys.executable, "-c", code], project, env)
    figures["engine start and first query"] = float(out.strip().splitlines()[-1])
    return figures


def run_all_once(template: Path, env: dict[str, str], package: str, stages: list[dict[str, float]]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(shutil.copytree(template, Path(tmp) / "project"))
        took, out = seconds([sys.executable, "-m", package, "run", "all", "--target", "local", "--json"], project,
                            {**env, "PYTHONPATH": str(project / "src")})
        stages.append({s["name"]: s["seconds"] for s in json.loads(out)["stages"]})
        return took


def bench_json(project: Path, env: dict[str, str], package: str, *args: str) -> dict[str, Any]:
    _, out = seconds([sys.executable, "-m", package, "bench", *args, "--json"], project, env)
    return json.loads(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per wall-clock figure (the median is quoted)")
    parser.add_argument("--renders", type=int, default=10)
    parser.add_argument("--ingest-rows", type=int, action="append",
                        help="sample records for the ingestion benchmark (repeatable; default 1000000)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench.json")
    args = parser.parse_args()
    figures: dict[str, Any] = {}

    with tempfile.TemporaryDirectory() as tmp:
        renders = []
        for i in range(args.renders):
            start = time.perf_counter()
            render({"project_name": f"Bench {i}"}, Path(tmp) / f"r{i}")
            renders.append(time.perf_counter() - start)
        figures["render_seconds"] = statistics.median(renders)
        print(f"render: median {figures['render_seconds']:.3f} s over {len(renders)} renders", flush=True)

        project = render({}, Path(tmp) / "default")
        package = next((project / "src").iterdir()).name
        env = {**os.environ, "PYTHONPATH": str(project / "src"), "MLFLOW_DISABLE_TELEMETRY": "true"}
        figures["profile_seconds"] = profile(project, env)
        print("profile: " + ", ".join(f"{k} {v:.2f} s" for k, v in figures["profile_seconds"].items()), flush=True)

        suite = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2"]
        # Not counted: the first run in an environment also records the JVM's class archive, once.
        figures["generated_suite_first_run"] = seconds(suite, project, env)[0]
        print(f"generated suite, first run (records the JVM's class archive; not counted): "
              f"{figures['generated_suite_first_run']:.1f} s", flush=True)
        figures["generated_suite"] = median_of(args.runs, lambda: seconds(suite, project, env)[0])
        print(f"generated suite (pytest -n 2, as nox -s tests): {shown(figures['generated_suite'])}; goal <= 45 s",
              flush=True)

        stage_runs: list[dict[str, float]] = []
        figures["run_all"] = median_of(args.runs, lambda: run_all_once(project, env, package, stage_runs))
        figures["run_all_stage_seconds"] = {name: statistics.median(r[name] for r in stage_runs)
                                            for name in stage_runs[0]}
        print(f"run all on a fresh default project: {shown(figures['run_all'])}; goal <= 30 s; stages (median): "
              + ", ".join(f"{k} {v:.1f} s" for k, v in figures["run_all_stage_seconds"].items())
              + "; goal silver <= 3 s", flush=True)

        sizes = [arg for rows in (args.ingest_rows or [1_000_000]) for arg in ("--rows", str(rows))]
        figures["ingest"] = bench_json(project, env, package, "ingest", *sizes)
        for run in figures["ingest"].get("runs", [figures["ingest"]]):
            print(f"ingestion of {run['rows']:,} records: pipeline {run['pipeline_seconds']:.1f} s, typed single-pass "
                  f"copy {run['typed_copy_seconds']:.1f} s: {run['ratio']:.1f}x (goal <= 5x)", flush=True)
        figures["train"] = bench_json(project, env, package, "train")
        print(f"training on {figures['train']['rows']:,} rows: {figures['train']['train_seconds']:.1f} s, MLflow "
              f"share {figures['train']['mlflow_share']:.0%} (goal <= 10%)", flush=True)
        figures["score"] = bench_json(project, env, package, "score")
        print(f"scoring {figures['score']['rows']:,} rows: the pipeline at {figures['score']['ratio']:.2f}x in-process "
              "predict (goal >= 0.7x)", flush=True)
        figures["psi"] = bench_json(project, env, package, "psi")
        print(f"PSI on {figures['psi']['rows']:,} rows x {figures['psi']['columns']} columns: "
              f"{figures['psi']['psi_seconds']:.2f} s", flush=True)
        figures["serve"] = bench_json(project, env, package, "serve")
        for kind in ("single", "batch"):
            router, alone = figures["serve"][f"router_{kind}"], figures["serve"][f"mlflow_{kind}"]
            print(f"serving, {kind}: router p50 {router['p50_ms']:.1f} ms / p99 {router['p99_ms']:.1f} ms / "
                  f"{router['requests_per_second']:.0f} req/s; mlflow models serve alone p50 {alone['p50_ms']:.1f} ms "
                  f"/ p99 {alone['p99_ms']:.1f} ms / {alone['requests_per_second']:.0f} req/s: "
                  f"{figures['serve'][f'{kind}_overhead_ratio']:.2f}x", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
