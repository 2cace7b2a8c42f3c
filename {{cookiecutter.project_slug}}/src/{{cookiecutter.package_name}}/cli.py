"""One command line for notebooks, jobs and local runs.

    python -m PACKAGE sample-data [--rows N] [--drift] [--out DIR]
    python -m PACKAGE contract draft PATH --name NAME [--label COLUMN] [--format csv] [--option sep=;] [--force]
    python -m PACKAGE run all --target local [--local-dir DIR] [--json]   # sample data first if none; writes the report
    python -m PACKAGE run ingest --target local --json
    python -m PACKAGE run bootstrap --target dev --catalog c --schema s
    python -m PACKAGE bundle-check [--target T] [--var name=value]
    python -m PACKAGE bench ingest [--rows 1000000 --rows 10000000] [--json]
    python -m PACKAGE bench train [--rows 1030000]
    python -m PACKAGE bench score|psi [--rows 1000000]
    python -m PACKAGE bench serve [--requests 2000]
    python -m PACKAGE serve --target local --port 8080          # @champion over HTTP, canary / shadow
    python -m PACKAGE approve --version 3 --reason "reviewed metrics and model card"
    python -m PACKAGE promote --reason "weekly release"        # @challenger -> @champion
    python -m PACKAGE rollback --reason "conversion dropped"   # previous validated @champion back
    python -m PACKAGE rollback --to 2 --reason "back to the spring model"
    python -m PACKAGE run ingest --retry-file raw/events/part-7.json   # an unreadable file, fixed in place
    python -m PACKAGE batches list [--source S]
    python -m PACKAGE batches skip 3 --reason "supplier sent a broken export"   # audited
    python -m PACKAGE batches replay 3 --reason "contract fixed"
    python -m PACKAGE report [--target local] [--local-dir DIR] [--out FILE]   # one static HTML page
    python -m PACKAGE stages
"""

from __future__ import annotations

import argparse
import functools
import getpass
import importlib
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from . import pipeline
from .config import ConfigError, TargetConfig, load_project, project_root, target_config
from .context import RunContext, StageFailure, stderr
from .contract import FORMATS, load_contracts
from .ml import registry
from .names import SERVING_LOG_TABLE
from .runtime import ENGINES, LocalRuntime, PlatformError, Runtime, open_runtime
from .runtime.landing import list_landing_files
from .stages import ingest

USAGE = (__doc__ or "").replace("PACKAGE", str(__package__))


def _tool(name: str) -> ModuleType:
    """A module of ``tools/``, imported on use: tools are not part of a pipeline run, and their
    imports (pandas, the bundle schema classes) would slow every other command."""
    return importlib.import_module(f"{__package__}.tools.{name}")


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser; notebooks build their ``run`` arguments with it too."""
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}", description=USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run pipeline stages in order")
    run.add_argument("stages", nargs="+", metavar="STAGE", help="stage names, or all / ingest")
    _target_arguments(run)
    run.add_argument("--engine", choices=ENGINES, default="sail",
                     help="local engine: sail (embedded, Delta built in) or jvm (needs the Delta jars)")
    run.add_argument("--catalog", help="override the target's catalog (jobs pass the bundle's names)")
    run.add_argument("--schema", help="override the target's schema (dev mode prefixes it)")
    run.add_argument("--run-id", help="id recorded in pipeline_runs; reuse it to make a rerun idempotent")
    run.add_argument("--experiment", help="MLflow experiment (default: conf/project.yml; jobs pass the bundle's)")
    run.add_argument("--model-name", help="registered model name without catalog and schema (default: "
                     "conf/project.yml)")
    run.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    run.add_argument("--retry-file", action="append", default=[], metavar="PATH",
                     help="read this landing file again although it was unreadable and has not changed "
                          "(its path relative to the landing volume, as the run reported it; repeatable)")

    batches = commands.add_parser("batches", help="list, skip or replay ingest batches of a source")
    batches.add_argument("action", choices=["list", "skip", "replay"])
    batches.add_argument("batch", type=int, nargs="?", help="the batch id (skip and replay)")
    batches.add_argument("--source", help="contract name (default: the source in conf/project.yml)")
    batches.add_argument("--reason", help="why (skip and replay): kept in batch_decisions")
    batches.add_argument("--by", default=None, help="who (default: the current user)")
    _target_arguments(batches, engine=False)
    batches.add_argument("--engine", choices=ENGINES, default="sail", help="local engine (default: sail)")

    check = commands.add_parser("bundle-check", help="validate databricks.yml and resources/ offline")
    check.add_argument("--target", action="append", dest="targets",
                       help="target to check (repeatable; default: every target)")
    check.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                       help="bundle variable value, as databricks bundle --var")

    sample = commands.add_parser("sample-data", help="write deterministic sample landing files with defects")
    sample.add_argument("--rows", type=int, default=100_000, help="records to generate (default 100000)")
    sample.add_argument("--drift", action="store_true", help="a later period with shifted feature distributions")
    sample.add_argument("--out", type=Path, help="folder for the files (default: the source's landing folder)")
    sample.add_argument("--source", help="contract name (default: the source in conf/project.yml)")
    sample.add_argument("--seed", type=int, default=7)
    _target_arguments(sample, engine=False)

    contract = commands.add_parser("contract", help="data contract tools")
    contract_commands = contract.add_subparsers(dest="contract_command", required=True, metavar="COMMAND")
    draft = contract_commands.add_parser(
        "draft", help="profile landing files and write conf/contracts/NAME.yml and conf/expectations/NAME.json")
    draft.add_argument("path", type=Path, metavar="PATH", help="a landing folder, or one file")
    draft.add_argument("--name", required=True, help="the source's name (lowercase letters, digits and _)")
    draft.add_argument("--label", metavar="COLUMN", help="the label column (its name in the file or in the draft)")
    draft.add_argument("--format", choices=FORMATS, dest="file_format",
                       help="csv, json or parquet (default: from the file suffixes)")
    draft.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="an Auto Loader reader option (repeatable); the others are detected")
    draft.add_argument("--force", action="store_true", help="overwrite existing files of the same name")
    _target_arguments(draft, engine=False)

    bench = commands.add_parser("bench", help="print ingestion, training, scoring or PSI timings on sample data "
                                "(asserts nothing)")
    bench.add_argument("what", choices=["ingest", "train", "score", "psi", "serve"])
    bench.add_argument("--rows", type=int, action="append", help="records per run (repeatable; default 1000000)")
    bench.add_argument("--requests", type=int, default=2000,
                       help="serve: requests per measurement (default 2000; each is also bounded to 60 s)")
    bench.add_argument("--json", action="store_true", help="one JSON object of the figures on stdout")

    for action, text in (("approve", "approve a validated model version for promotion"),
                         ("promote", "make @challenger (or --version) the @champion; needs approval"),
                         ("rollback", "put the previous validated @champion back (or --to VERSION)")):
        sub = commands.add_parser(action, help=text)
        if action != "rollback":
            sub.add_argument("--version", required=action == "approve", help="model version")
        else:
            sub.add_argument("--to", metavar="VERSION", help="a validated version to return to (default: the "
                                                             "previous champion in the audit trail)")
        sub.add_argument("--reason", required=True, help="why: kept in the audit trail")
        sub.add_argument("--by", default=None, help="who (default: the current user)")
        sub.add_argument("--model-name", help="registered model name (default: conf/project.yml)")
        _target_arguments(sub, engine=False)

    serve = commands.add_parser("serve", help="serve @champion over HTTP with the canary / shadow router "
                                "(conf/project.yml serving:), logging every request to the serving_log table")
    _target_arguments(serve, engine=False)
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--model-name", help="registered model name (default: conf/project.yml)")

    report = commands.add_parser("report", help="write the run report: one self-contained HTML page (latest run, "
                                 "drift and performance over time, versions, quarantine, validation and fairness)")
    _target_arguments(report, engine=False)
    report.add_argument("--engine", choices=ENGINES, default="sail", help="local engine (default: sail)")
    report.add_argument("--out", type=Path, help="the HTML file (default: reports/run_report.html in the landing "
                        "volume)")
    report.add_argument("--model-name", help="registered model name (default: conf/project.yml)")

    commands.add_parser("stages", help="list the stages in run order")
    return parser


def _offline_runtime(args: argparse.Namespace, root: Path, target: TargetConfig) -> LocalRuntime:
    """A local runtime without a Spark engine: paths and MLflow settings only."""
    return LocalRuntime(target=target.name, catalog=args.catalog or target.catalog,
                        schema=args.schema or target.schema, spark=None,
                        local_dir=(args.local_dir or root / ".local").resolve())


def _registry(args: argparse.Namespace, root: Path) -> int:
    target = target_config(root, args.target)
    if target.platform == "local":
        rt = _offline_runtime(args, root, target)
    else:
        rt = open_runtime(target.name, args.catalog or target.catalog, args.schema or target.schema,
                          target.platform)
    rt.configure_mlflow()
    name = rt.model_name(args.model_name or load_project(root).model_name)
    who = args.by or getpass.getuser()
    if args.command == "approve":
        result = registry.approve(name, args.version, who, args.reason)
    elif args.command == "promote":
        result = registry.promote(name, args.version, who, args.reason,
                                  int(load_project(root).inference["min_shadow_batches"]))
    else:
        result = registry.rollback(name, who, args.reason, args.to)
    print(json.dumps(result, indent=2))
    return 0


def _target_arguments(parser: argparse.ArgumentParser, engine: bool = True) -> None:
    parser.add_argument("--target", default="local", help="local (conf/targets.yml) or a databricks.yml target (default: local)")
    parser.add_argument("--local-dir", type=Path, default=None,
                        help="folder for all local state (default: .local in the project)")
    if not engine:
        parser.add_argument("--catalog", help="override the target's catalog")
        parser.add_argument("--schema", help="override the target's schema")


def _sample_data_if_missing(rt: LocalRuntime, ctx: RunContext, log: Callable[[str], None] = stderr) -> None:
    """A local run on an empty landing folder starts from the shipped sample data (the run's
    configuration, already read and checked, names the source)."""
    contract = ctx.contracts[ctx.project.source]
    folder = Path(rt.landing_path(contract.path))
    if folder.is_dir() and list_landing_files(folder):
        return
    sample_data = _tool("sample_data")
    if sample_data.SHIPPED_PATHS.get(contract.name) != contract.path:
        raise ConfigError(f"no landing files for source {contract.name!r} in {folder} (path: {contract.path} in "
                          f"{contract.source_file}). Fix: put its {contract.format} files there, or correct path "
                          "in the contract")
    log(f"no landing files in {folder}: writing sample data first (python -m {__package__} sample-data)")
    report = sample_data.generate(contract.name, folder)
    log(f"  sample data: {report.records} records in {len(report.files)} files")


def run_summary(args: argparse.Namespace, root: Path,
                after: Callable[[Runtime, pipeline.RunSummary], None] | None = None) -> pipeline.RunSummary:
    """Run the stages named in ``args`` (the ``run`` command) and return the summary; ``after`` runs
    once the stages are recorded, while the runtime and its engine are still open."""
    stages = pipeline.resolve_stages(args.stages)
    pipeline.preload_validation(stages)  # before the engine starts; the runner joins it
    target = target_config(root, args.target)
    local_dir = args.local_dir or root / ".local"
    with open_runtime(
        target=target.name,
        catalog=args.catalog or target.catalog,
        schema=args.schema or target.schema,
        platform=target.platform,
        local_dir=local_dir,
        engine=args.engine,
    ) as rt:
        local_ingest = isinstance(rt, LocalRuntime) and "bronze" in stages
        summary = pipeline.run_stages(rt, stages, run_id=args.run_id, root=root, experiment=args.experiment,
                                      model_name=args.model_name, retry_files=tuple(args.retry_file),
                                      before_stages=functools.partial(_sample_data_if_missing, rt) if local_ingest
                                      else None)
        if after is not None:
            after(rt, summary)
        return summary


def _report_after_run(args: argparse.Namespace, root: Path, written: dict[str, Any]) -> Callable[
        [Runtime, pipeline.RunSummary], None]:
    """``run all`` ends by writing the run report on the run's own engine.  A report that cannot be
    written is said, with the command that retries it, and never fails a run whose stages succeeded."""
    def write(rt: Runtime, summary: pipeline.RunSummary) -> None:
        started = time.perf_counter()
        try:
            written["report"] = str(_tool("report").write_report(rt, root, model_name=args.model_name))
        except Exception as exc:  # the run's outcome is its stages'; the report is a view of them
            written["report"] = None
            written["report_error"] = (f"{type(exc).__name__}: {exc}. Fix: see the error, then python -m "
                                       f"{__package__} report --target {args.target}")
        written["report_seconds"] = round(time.perf_counter() - started, 3)
    return write


def _batches(args: argparse.Namespace, root: Path) -> int:
    """``batches list|skip|replay``: the ingest batches of one source, and decisions about them."""
    if args.action != "list" and (args.batch is None or not args.reason):
        raise ConfigError(f"batches {args.action} needs a batch id and --reason. Fix: e.g. batches {args.action} 3 "
                          "--reason 'supplier resent the file'")
    target = target_config(root, args.target)
    with open_runtime(target.name, args.catalog or target.catalog, args.schema or target.schema, target.platform,
                      local_dir=args.local_dir or root / ".local", engine=args.engine) as rt:
        ctx = pipeline.run_context(rt, root, uuid.uuid4().hex)
        source = args.source or ctx.project.source
        if source not in ctx.contracts:
            raise ConfigError(f"unknown source {source!r}; contracts: {', '.join(ctx.contracts)}")
        contract, who = ctx.contracts[source], args.by or getpass.getuser()
        if args.action == "list":
            result: Any = ingest.batch_overview(rt, contract)
        elif args.action == "skip":
            result = ingest.skip_batch(rt, ctx, contract, args.batch, args.reason, who)
        else:
            result = ingest.replay_batch(rt, ctx, contract, args.batch, args.reason, who)
    print(json.dumps(result, indent=2, default=str))
    return 0


def _serve(args: argparse.Namespace, root: Path) -> int:
    """``serve``: the local router; on Databricks the deploy_serving task runs the endpoint instead."""
    target = target_config(root, args.target)
    if target.platform != "local":
        raise ConfigError(f"serve runs the local router; on target {target.name!r} the Model Serving endpoint is "
                          "created and updated by the deploy_serving task after promote. Fix: use --target local")
    project = load_project(root)
    if project.serving is None:
        raise ConfigError("conf/project.yml has no serving section, so nothing is served in real time. Fix: add "
                          "`serving: {mode: shadow}` (see the generated README, Real-time serving)")
    rt = _offline_runtime(args, root, target)
    rt.configure_mlflow()
    _tool("serve").serve(rt.model_name(args.model_name or project.model_name), project.serving,
                         rt.path(SERVING_LOG_TABLE), args.host, args.port, location=rt.model_location)
    return 0


def _bench(args: argparse.Namespace, root: Path) -> int:
    """Figures on stderr as they come; with ``--json`` one JSON object on stdout (a list under ``runs``
    when several ``--rows`` were given)."""
    bench = _tool("bench")
    if args.what == "ingest":
        runs = bench.bench_ingest(root, args.rows or [1_000_000])
    elif args.what == "serve":
        runs = [bench.bench_serve(root, args.requests)]
    else:
        measure = {"train": bench.bench_train, "score": bench.bench_score}.get(args.what)
        default = 1_030_000 if args.what == "train" else 1_000_000
        runs = [measure(root, rows) if measure else bench.bench_psi(rows) for rows in args.rows or [default]]
    if args.json:
        print(json.dumps({"bench": args.what, **runs[0]} if len(runs) == 1 else {"bench": args.what, "runs": runs}))
    return 0


def _run(args: argparse.Namespace, root: Path) -> int:
    written: dict[str, Any] = {}
    summary = run_summary(args, root, after=_report_after_run(args, root, written) if "all" in args.stages else None)
    text = summary.to_text()
    if written:
        text += (f"\nreport: {written['report']} ({written['report_seconds']:.2f}s)" if written["report"]
                 else f"\nreport: not written: {written['report_error']}")
    if args.json:
        print(json.dumps({**json.loads(summary.to_json()), **written}, indent=2))
        print(text, file=sys.stderr)
    else:
        print(text)
    return 0 if summary.ok else 1


def _report(args: argparse.Namespace, root: Path) -> int:
    """``report``: the page on demand, from whatever the tables and the registry hold now; its path
    is the last line printed."""
    target = target_config(root, args.target)
    started = time.perf_counter()
    with open_runtime(target.name, args.catalog or target.catalog, args.schema or target.schema, target.platform,
                      local_dir=args.local_dir or root / ".local", engine=args.engine) as rt:
        path = _tool("report").write_report(rt, root, args.out, model_name=args.model_name)
    print(f"report written in {time.perf_counter() - started:.2f}s", file=sys.stderr)
    print(path)
    return 0


def _sample_data(args: argparse.Namespace, root: Path) -> int:
    source = args.source or load_project(root).source
    contracts = load_contracts(root)
    if source not in contracts:
        raise ConfigError(f"unknown source {source!r}; contracts: {', '.join(contracts)}")
    if source not in _tool("sample_data").SOURCES:
        raise ConfigError(f"sample-data generates only the shipped sources ({', '.join(_tool('sample_data').SOURCES)}), "
                          f"not {source!r}. Fix: land {source}'s own files in its landing folder")
    out = args.out
    if out is None:
        target = target_config(root, args.target)
        if target.platform != "local":
            raise ConfigError("sample-data writes local files. Fix: pass --out /Volumes/<catalog>/<schema>/landing/"
                              "raw/<source> when running on Databricks, or use --target local")
        out = Path(_offline_runtime(args, root, target).landing_path(contracts[source].path))
    report = _tool("sample_data").generate(source, out, rows=args.rows, drift=args.drift, seed=args.seed)
    print(json.dumps(report.to_dict(), indent=2))
    return 0


def _contract_draft(args: argparse.Namespace, root: Path) -> int:
    """Drafts relative to the local landing volume when the files are in it."""
    target = target_config(root, args.target)
    landing = (Path(_offline_runtime(args, root, target).landing_path("")) if target.platform == "local" else None)
    return _tool("contract_draft").main(root, args.path, args.name, label=args.label, file_format=args.file_format,
                                        option_pairs=args.option, force=args.force, landing_root=landing)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "stages":
            print("\n".join(pipeline.STAGES))
            return 0
        root = project_root()
        if args.command == "bundle-check":
            return _tool("bundle_check").main(root, args.targets, args.var)
        if args.command == "sample-data":
            return _sample_data(args, root)
        if args.command == "contract":
            return _contract_draft(args, root)
        if args.command == "batches":
            return _batches(args, root)
        if args.command in ("approve", "promote", "rollback"):
            return _registry(args, root)
        if args.command == "bench":
            return _bench(args, root)
        if args.command == "serve":
            return _serve(args, root)
        if args.command == "report":
            return _report(args, root)
        return _run(args, root)
    except (ConfigError, PlatformError, ValueError, StageFailure) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
