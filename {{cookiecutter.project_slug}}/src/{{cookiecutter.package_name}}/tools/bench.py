"""Timings on sample data; they print figures and assert nothing.

* ``bench ingest``: bronze -> silver -> gold next to, in the same run, the floor of a single-pass
  pipeline (the same records read, parsed with the contract's types and written to Delta once) and a
  bare read-raw -> write-Delta; and a rerun with no new files;
* ``bench train``: the train stage on a training set of the given size, and the share of it
  spent logging to MLflow;
* ``bench score``: scoring with ``@champion`` in process, with ``mapInArrow`` and with
  ``mlflow.pyfunc.spark_udf`` on the same rows;
* ``bench psi``: PSI of 20 columns of a batch against a baseline;
* ``bench serve``: loopback p50 / p99 latency and requests per second of ``serve`` (the canary /
  shadow router) and of ``mlflow models serve`` alone on the same model, so the router's overhead
  is a ratio measured in the same run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import requests

from ..config import ConfigError, load_project
from ..contract import load_contracts
from ..data.drift import drift, fit_baseline
from ..data.inputs import model_inputs
from ..data.quality import cast_expression
from ..ml.registry import alias_version, mlflow_client
from ..ml.scoring import score_frame
from ..names import LABEL, PACKAGE, SCORE_COLUMNS
from ..pipeline import run_stages
from ..runtime import open_runtime
from ..runtime.landing import list_landing_files, read_landing_file, union_all
from .sample_data import generate


def _landing_frame(rt, contract, files: list[Path], target: Path):
    """The files as the bronze reader reads them; what a reader stages goes next to ``target``."""
    scratch = target.with_name(target.name + "-read")
    return union_all([read_landing_file(rt.spark, f, contract, scratch) for f in files])


def _bare_copy(rt, contract, files: list[Path], target: Path) -> float:
    """Read the raw files as the bronze reader does, without parsing, and write them to Delta."""
    start = time.perf_counter()
    frame = rt.spark.read.text([str(f) for f in files]) if contract.format == "json" else _landing_frame(
        rt, contract, files, target)
    frame.write.format("delta").mode("overwrite").save(str(target))
    return time.perf_counter() - start


def _typed_copy(rt, contract, files: list[Path], target: Path) -> float:
    """The floor of a single-pass pipeline: the same records read as bronze reads them, every column
    parsed to the contract's type as silver parses it, written to Delta once."""
    start = time.perf_counter()
    typed = _landing_frame(rt, contract, files, target).select(*[cast_expression(c).alias(c.name)
                                                                 for c in contract.columns])
    typed.write.format("delta").mode("overwrite").save(str(target))
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
                typed = _typed_copy(rt, contract, files, scratch / "typed")
                start = time.perf_counter()
                first = run_stages(rt, ["ingest"], run_id="bench-1", log=lambda _: None, root=root)
                ingest = time.perf_counter() - start
                start = time.perf_counter()
                second = run_stages(rt, ["ingest"], run_id="bench-2", log=lambda _: None, root=root)
                rerun = time.perf_counter() - start
                if not (first.ok and second.ok):
                    raise RuntimeError(f"ingestion failed during the benchmark: {first.to_text()}")
            result = {"rows": report.records, "pipeline_seconds": ingest, "typed_copy_seconds": typed,
                      "ratio": ingest / typed, "bare_copy_seconds": bare, "rerun_seconds": rerun,
                      "generate_seconds": generated, "stage_seconds": {s.name: s.seconds for s in first.stages}}
            results.append(result)
            stages = ", ".join(f"{s.name} {s.seconds:.1f} s" for s in first.stages)
            print(f"{report.records:>11,} records: bronze->gold {ingest:7.1f} s ({stages}); typed single-pass copy "
                  f"{typed:6.1f} s: ratio {ingest / typed:4.1f}x (goal <= 5x); bare read->Delta {bare:6.1f} s; "
                  f"rerun with no new files {rerun:4.2f} s; generating the files took {generated:.1f} s",
                  file=sys.stderr, flush=True)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    for smaller, larger in pairwise(results):
        print(f"{larger['rows'] / smaller['rows']:.0f}x more records: "
              f"{larger['pipeline_seconds'] / smaller['pipeline_seconds']:.1f}x the time", file=sys.stderr)
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
    print(f"train stage on {training_rows:,} rows: {total:.1f} s wall, of which fitting "
          f"{details['fit_seconds']:.1f} s and MLflow logging + registration {logging:.1f} s = "
          f"{logging / total:.0%} (goal <= 10%)", file=sys.stderr, flush=True)
    return {"rows": training_rows, "train_seconds": total, "fit_seconds": float(details["fit_seconds"]),
            "mlflow_seconds": logging, "mlflow_share": logging / total}


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds / 1000:,.0f}k rows/s ({seconds:.2f} s)"


def _median_seconds(work: Callable[[], Any], runs: int = 3) -> float:
    """The median wall-clock seconds of ``runs`` calls of ``work``."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@contextmanager
def prepared_champion(root: Path, label: str) -> Iterator[tuple[Any, str, str]]:
    """A scratch lake whose sample data went through the pipeline up to promote: (runtime, model name,
    @champion's version).  Everything is removed afterwards."""
    project = load_project(root)
    contract = load_contracts(root)[project.source]
    scratch = Path(tempfile.mkdtemp(prefix=f"bench-{label}-"))
    try:
        with open_runtime("local", "bench", label, "local", local_dir=scratch / ".local") as rt:
            generate(contract.name, Path(rt.landing_path(contract.path)), rows=30_000)
            prepared = run_stages(rt, ["ingest", "features", "train", "validate", "promote"], run_id="bench-prep",
                                  log=lambda _: None, root=root)
            if not prepared.ok:
                raise RuntimeError(f"preparing a champion failed: {prepared.to_text()}")
            name = rt.model_name(project.model_name)
            rt.configure_mlflow()
            yield rt, name, str(alias_version(mlflow_client(), name, "champion").version)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _model_inputs(rt: Any, root: Path) -> Any:
    """Every gold row as the model sees it, without the label."""
    project = load_project(root)
    contract = load_contracts(root)[project.source]
    spine = rt.read(contract.gold_table).select(*contract.gold.entity_keys, contract.gold.timestamp, LABEL)
    return model_inputs(rt, project, contract, spine).drop(LABEL)


def bench_score(root: Path, rows: int) -> dict[str, float]:
    """Champion scoring of ``rows`` model inputs three ways in one run, each the median of three: pandas in process,
    ``mapInArrow`` (the score stage's path) and ``mlflow.pyfunc.spark_udf``."""
    import mlflow
    from pyspark.sql import functions as F

    problem_type = load_project(root).problem_type
    with prepared_champion(root, "score") as (rt, name, version):
        scratch = Path(rt.local_dir).parent
        inputs = _model_inputs(rt, root)
        copies = -(-rows // inputs.count())
        inputs.crossJoin(rt.spark.range(copies).withColumnRenamed("id", "_copy")).limit(rows).drop("_copy") \
            .write.format("delta").mode("overwrite").save(str(scratch / "inputs"))
        frame = rt.spark.read.format("delta").load(str(scratch / "inputs"))
        uri = rt.model_location(name, version)
        outputs = SCORE_COLUMNS[problem_type]

        pdf = frame.toPandas()
        model = mlflow.pyfunc.load_model(uri)
        model.predict(pdf.head(20_000))  # every path gets one warm-up call on 20k rows
        in_process = _median_seconds(lambda: model.predict(pdf))

        def consume(score: Callable[[Any], Any]) -> float:
            score(frame.limit(20_000)).agg(F.count("*")).collect()
            return _median_seconds(lambda: score(frame).agg(F.count("*"), *[F.sum(c) for c in outputs]).collect())

        mapped = consume(lambda f: score_frame(f, uri, problem_type, *rt.mlflow_uris()))
        udf = mlflow.pyfunc.spark_udf(rt.spark, uri, env_manager="local",
                                      result_type=", ".join(f"{c} double" for c in outputs))
        udf_seconds = consume(lambda f: f.select(udf(F.struct(*f.columns)).alias("out")).select("out.*"))
    print(f"scoring {rows:,} rows with @champion: in-process pandas predict {_rate(rows, in_process)}; "
          f"the score stage's mapInArrow {_rate(rows, mapped)} = {in_process / mapped:.2f}x in-process "
          f"(goal >= 0.7x); mlflow spark_udf {_rate(rows, udf_seconds)}: mapInArrow is "
          f"{udf_seconds / mapped:.2f}x its throughput", file=sys.stderr, flush=True)
    return {"rows": rows, "in_process_seconds": in_process, "pipeline_seconds": mapped, "spark_udf_seconds": udf_seconds,
            "ratio": in_process / mapped}


# Records per request of the batched measurement, and the time bound of one measurement.
SERVE_BATCH = 100
SERVE_SECONDS = 60.0


def _start_server(command: list[str], port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a server process and wait (at most 180 s) until it answers ``GET /ping``."""
    process = subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(command[:4])} exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return process
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{' '.join(command[:4])} did not answer /ping within 180 s: {log.read_text()[-2000:]}")


def _latencies(url: str, body: bytes, count: int) -> tuple[list[float], float]:
    """Per-request seconds of ``count`` sequential requests on one keep-alive connection (at most
    ``SERVE_SECONDS``), and the wall time they took."""
    session = requests.Session()
    headers = {"content-type": "application/json"}
    session.post(url, data=body, headers=headers, timeout=30).raise_for_status()  # warm-up
    seconds, started = [], time.perf_counter()
    for _ in range(count):
        sent = time.perf_counter()
        session.post(url, data=body, headers=headers, timeout=30).raise_for_status()
        seconds.append(time.perf_counter() - sent)
        if sent - started > SERVE_SECONDS:
            break
    return seconds, time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_serve(root: Path, count: int) -> dict[str, Any]:
    """Loopback latency and throughput of ``serve`` (the router) and of ``mlflow models serve`` alone on the
    same @champion, single records and batches of ``SERVE_BATCH``, measured in alternating rounds."""
    if load_project(root).serving is None:
        raise ConfigError("bench serve measures the real-time router, and conf/project.yml has no serving section. "
                          "Fix: add `serving: {mode: shadow}`")
    with prepared_champion(root, "serve") as (rt, name, version):
        records = _model_inputs(rt, root).limit(SERVE_BATCH).toPandas()
        body = {size: json.dumps({"dataframe_split": json.loads(records.head(size).to_json(
            orient="split", index=False, date_format="iso"))}).encode() for size in (1, SERVE_BATCH)}
        tracking, registry_uri = rt.mlflow_uris()
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_REGISTRY_URI": registry_uri}
        ports = {"mlflow": _free_port(), "router": _free_port()}
        commands = {
            "mlflow": [sys.executable, "-m", "mlflow", "models", "serve", "-m", rt.model_location(name, version),
                       "--env-manager", "local", "-h", "127.0.0.1", "-p", str(ports["mlflow"])],
            "router": [sys.executable, "-m", PACKAGE, "serve", "--local-dir", str(rt.local_dir), "--catalog",
                       rt.catalog, "--schema", rt.schema, "--port", str(ports["router"])]}
        logs = Path(rt.local_dir)
        servers = {}
        try:
            for which, command in commands.items():
                servers[which] = _start_server(command, ports[which], env, logs / f"{which}.log")
            figures: dict[str, Any] = {"requests": count, "batch_records": SERVE_BATCH, "model_version": version}
            for size in (1, SERVE_BATCH):
                runs: dict[str, tuple[list[float], float]] = {"mlflow": ([], 0.0), "router": ([], 0.0)}
                for _ in range(3):  # alternating rounds: a drift in machine speed hits both alike
                    for which in runs:
                        seconds, wall = _latencies(f"http://127.0.0.1:{ports[which]}/invocations", body[size],
                                                   max(1, count // 3))
                        runs[which] = (runs[which][0] + seconds, runs[which][1] + wall)
                kind = "single" if size == 1 else "batch"
                for which, (seconds, wall) in runs.items():
                    cut = statistics.quantiles(seconds, n=100)
                    figures[f"{which}_{kind}"] = {"p50_ms": statistics.median(seconds) * 1000, "p99_ms": cut[98] * 1000,
                                                  "requests_per_second": len(seconds) / wall,
                                                  "records_per_second": len(seconds) * size / wall}
                router, alone = figures[f"router_{kind}"], figures[f"mlflow_{kind}"]
                figures[f"{kind}_overhead_ratio"] = router["p50_ms"] / alone["p50_ms"]
                print(f"serve, {kind} ({size} record{'s' if size > 1 else ''} per request, {len(runs['router'][0])} "
                      f"requests each): router p50 {router['p50_ms']:.2f} ms, p99 {router['p99_ms']:.2f} ms, "
                      f"{router['requests_per_second']:.0f} req/s; mlflow models serve alone p50 "
                      f"{alone['p50_ms']:.2f} ms, p99 {alone['p99_ms']:.2f} ms, {alone['requests_per_second']:.0f} "
                      f"req/s; router/mlflow p50 = {figures[f'{kind}_overhead_ratio']:.2f}x",
                      file=sys.stderr, flush=True)
        finally:
            for process in servers.values():
                process.terminate()
                process.wait(timeout=30)
    return figures


def bench_psi(rows: int, columns: int = 20) -> dict[str, float]:
    """PSI of ``columns`` columns (numeric and categorical) of a ``rows``-row batch against a baseline."""
    from pyspark.sql import functions as F

    scratch = Path(tempfile.mkdtemp(prefix="bench-psi-"))
    try:
        with open_runtime("local", "bench", "psi", "local", local_dir=scratch / ".local") as rt:
            def synthetic(shift: float) -> list:
                numbers = [(F.randn(i) * (1 + i % 3) + shift).alias(f"x{i}") for i in range(columns - columns // 5)]
                labels = [F.concat(F.lit("c"), (F.rand(100 + i) * (3 + i)).cast("int").cast("string")).alias(f"c{i}")
                          for i in range(columns // 5)]
                return numbers + labels

            for name, shift in (("baseline", 0.0), ("batch", 0.3)):
                rt.spark.range(rows).select(*synthetic(shift)).write.format("delta").mode("overwrite") \
                    .save(str(scratch / name))
            baseline_frame = rt.spark.read.format("delta").load(str(scratch / "baseline"))
            batch = rt.spark.read.format("delta").load(str(scratch / "batch"))
            start = time.perf_counter()
            baseline = fit_baseline(baseline_frame, baseline_frame.columns)
            fitted = time.perf_counter() - start
            start = time.perf_counter()
            results = drift(batch, baseline, threshold=0.2)
            seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"PSI on {rows:,} rows x {len(results)} columns: {seconds:.2f} s; fitting the baseline on "
          f"{rows:,} rows took {fitted:.2f} s; {sum(r.drifted for r in results)} columns flagged", file=sys.stderr,
          flush=True)
    return {"rows": rows, "columns": len(results), "psi_seconds": seconds, "baseline_seconds": fitted}
