"""Print the template's performance figures; nothing here asserts them.

* render: wall time of one cookiecutter render (mean and best of N), target <= 0.2 s;
* generated suite: wall time of the default project's own tests, both lanes in one
  pytest run and each lane alone, target <= 45 s;
* ingestion: the default project's ``bench ingest`` (bronze -> gold against a bare
  read -> Delta write of the same files, and a rerun with no new files);
* lifecycle: ``run all --target local`` on the freshly rendered default project, target <= 60 s;
* training: the default project's ``bench train`` on ~1M training rows (wall time and the
  share spent logging to MLflow);
* scoring and monitoring: ``bench score`` (1M rows: in-process predict, mapInPandas, spark_udf)
  and ``bench psi`` (20 columns on 1M rows).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render import render


def time_renders(count: int) -> list[float]:
    timings = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            start = time.perf_counter()
            render({"project_name": f"Bench {i}"}, Path(tmp))
            timings.append(time.perf_counter() - start)
    return timings


def time_suite(project: Path, *marker: str) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *marker],
                            cwd=project, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-300:]
    return elapsed, last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--renders", type=int, default=20)
    parser.add_argument("--ingest-rows", type=int, action="append",
                        help="sample records for the ingestion benchmark (repeatable; default 1000000)")
    args = parser.parse_args()

    timings = time_renders(args.renders)
    print(f"render: mean {statistics.mean(timings):.3f} s, best {min(timings):.3f} s over {len(timings)} "
          f"renders (target <= 0.2 s)")
    with tempfile.TemporaryDirectory() as tmp:
        project = render({}, Path(tmp))
        for label, marker in (("both lanes", ()), ("jvm lane", ("-m", "jvm")), ("sail lane", ("-m", "sail"))):
            elapsed, last = time_suite(project, *marker)
            suffix = " (target <= 45 s)" if label == "both lanes" else ""
            print(f"generated suite, {label}: {elapsed:.1f} s wall{suffix}  [{last}]", flush=True)
        package = next((project / "src").iterdir()).name
        env = {**os.environ, "PYTHONPATH": str(project / "src")}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", package, "run", "all", "--target", "local", "--json"], cwd=project,
                       env=env, check=True, capture_output=True)
        print(f"run all on the fresh default project (sample data, ingest, features, check, train, validate, "
              f"promote, score, monitor): {time.perf_counter() - start:.1f} s wall (target <= 60 s)", flush=True)
        sizes = [arg for rows in (args.ingest_rows or [1_000_000]) for arg in ("--rows", str(rows))]
        subprocess.run([sys.executable, "-m", package, "bench", "ingest", *sizes], cwd=project, env=env, check=True)
        subprocess.run([sys.executable, "-m", package, "bench", "train"], cwd=project, env=env, check=True)
        subprocess.run([sys.executable, "-m", package, "bench", "score"], cwd=project, env=env, check=True)
        subprocess.run([sys.executable, "-m", package, "bench", "psi"], cwd=project, env=env, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
