"""Timings on sample data; they print figures and assert nothing.

* ``bench ingest``: bronze -> silver -> gold next to a bare read-raw -> write-Delta of the same
  files in the same run, and a rerun with no new files;
* ``bench train``: the train stage on a training set of the given size, and the share of it
  spent logging to MLflow."""

from __future__ import annotations

import shutil
import tempfile
import time
from itertools import pairwise
from pathlib import Path

from .config import load_project
from .contract import load_contracts
from .landing import list_landing_files, read_landing_file
from .pipeline import run_stages
from .runtime import open_runtime
from .sample_data import generate


def _bare_copy(rt, contract, files: list[Path], target: Path) -> float:
    """Read the raw files as the bronze reader does, without parsing, and write them to Delta."""
    start = time.perf_counter()
    if contract.format == "json":
        frame = rt.spark.read.text([str(f) for f in files])
    else:
        frames = [read_landing_file(rt.spark, f, contract) for f in files]
        frame = frames[0]
        for other in frames[1:]:
            frame = frame.unionByName(other)
    frame.write.format("delta").mode("overwrite").save(str(target))
    return time.perf_counter() - start


def bench_ingest(root: Path, sizes: list[int]) -> list[dict[str, float]]:
    contract = load_contracts(root)[load_project(root).source]
    results = []
    for rows in sizes:
        scratch = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
        try:
            with open_runtime("local", "bench", "ingest", "local", local_dir=scratch / ".local") as rt:
                start = time.perf_counter()
                report = generate(contract.name, Path(rt.landing_path(contract.path)), rows=rows)
                generated = time.perf_counter() - start
                files = list_landing_files(Path(rt.landing_path(contract.path)))
                bare = _bare_copy(rt, contract, files, scratch / "bare")
                start = time.perf_counter()
                first = run_stages(rt, ["ingest"], run_id="bench-1", log=lambda _: None, root=root)
                ingest = time.perf_counter() - start
                start = time.perf_counter()
                second = run_stages(rt, ["ingest"], run_id="bench-2", log=lambda _: None, root=root)
                rerun = time.perf_counter() - start
                if not (first.ok and second.ok):
                    raise RuntimeError(f"ingestion failed during the benchmark: {first.to_text()}")
            result = {"records": report.records, "generate_s": generated, "bare_s": bare, "ingest_s": ingest,
                      "ratio": ingest / bare, "rerun_s": rerun}
            results.append(result)
            print(f"{report.records:>11,} records: bronze->gold {ingest:7.1f} s, bare read->Delta {bare:6.1f} s, "
                  f"ratio {ingest / bare:4.1f}x (goal <= 3x); rerun with no new files {rerun:4.2f} s (goal <= 3 s); "
                  f"generating the files took {generated:.1f} s", flush=True)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    for smaller, larger in pairwise(results):
        print(f"time ratio {larger['records'] / smaller['records']:.0f}x more records: "
              f"{larger['ingest_s'] / smaller['ingest_s']:.1f}x the time (goal <= 10x)")
    return results


def bench_train(root: Path, rows: int) -> dict[str, float]:
    contract = load_contracts(root)[load_project(root).source]
    scratch = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        with open_runtime("local", "bench", "train", "local", local_dir=scratch / ".local") as rt:
            generate(contract.name, Path(rt.landing_path(contract.path)), rows=rows)
            prepared = run_stages(rt, ["ingest", "features"], run_id="bench-prep", log=lambda _: None, root=root)
            if not prepared.ok:
                raise RuntimeError(f"preparing the training data failed: {prepared.to_text()}")
            start = time.perf_counter()
            summary = run_stages(rt, ["train"], run_id="bench-train", log=lambda _: None, root=root)
            total = time.perf_counter() - start
            if not summary.ok:
                raise RuntimeError(f"training failed during the benchmark: {summary.to_text()}")
            details = summary.stages[0].details
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    split = details["split"]
    logging = float(details["mlflow_logging_seconds"])
    training_rows = int(split["train_rows"]) + int(split["valid_rows"])
    print(f"train stage on {training_rows:,} rows: {total:.1f} s wall (goal <= 60 s), of which fitting "
          f"{details['fit_seconds']:.1f} s and MLflow logging + registration {logging:.1f} s = "
          f"{logging / total:.0%} (goal <= 10%)", flush=True)
    return {"rows": training_rows, "total_s": total, "logging_s": logging}
