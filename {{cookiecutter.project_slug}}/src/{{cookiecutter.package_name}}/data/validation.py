"""Great Expectations on a batch: the suite is derived from the data contract plus the
versioned expectation file in ``conf/expectations/``.  The report is kept as JSON and as rows
of a summary table; row-level expectations are also applied row by row (``data/quality.py``) so
failing rows can be quarantined, and the two counts agree.

Great Expectations decides every expectation (it is the validator of record).  Asked for counts
and examples too, it scans the batch once more per expectation; instead the failing rows of every
row-level expectation are counted in one aggregation with the quarantine's own conditions, and
the tests hold those counts against Great Expectations' ``BASIC`` results."""

from __future__ import annotations

import importlib
import logging
import re
import sys
import threading
from dataclasses import asdict, dataclass
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ..context import StageFailure
from ..contract import Contract, Expectation
from .quality import expectation_failed


@dataclass
class ExpectationResult:
    name: str
    type: str
    column: str | None
    success: bool
    unexpected_count: int | None
    element_count: int | None
    examples: str
    error: str | None = None


@dataclass
class ValidationReport:
    suite: str
    success: bool
    results: list[ExpectationResult]
    raw: dict[str, Any]

    def summary(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.results]


def _class_name(expectation_type: str) -> str:
    return "".join(part.capitalize() for part in expectation_type.split("_"))


def failing_rows(df: DataFrame, expectations: list[Expectation]) -> tuple[int, dict[int, tuple[int, list[Any]]]]:
    """One aggregation over the batch: its row count and, per row-level expectation (by position),
    the failing rows and the smallest and largest failing value."""
    aggregates = [F.count(F.lit(1)).alias("rows")]
    for i, exp in enumerate(expectations):
        if exp.row_level:
            failed, value = expectation_failed(exp), F.col(f"`{exp.column}`")
            aggregates += [F.sum(F.when(failed, 1).otherwise(0)).alias(f"failed_{i}"),
                           F.min(F.when(failed, value)).alias(f"low_{i}"), F.max(F.when(failed, value)).alias(f"high_{i}")]
    row = df.agg(*aggregates).first()
    found = {}
    for i, exp in enumerate(expectations):
        if exp.row_level:
            count = int(row[f"failed_{i}"] or 0)
            found[i] = (count, list(dict.fromkeys([row[f"low_{i}"], row[f"high_{i}"]])) if count else [])
    return int(row["rows"]), found


def import_great_expectations_in_background() -> threading.Thread | None:
    """Start importing Great Expectations (seconds of pure Python) on a daemon thread, or None if it
    is imported already.  The runner starts it before the first stage: bronze spends its time
    waiting on the engine, which releases the GIL, so the stage that validates finds the module
    imported (``import`` waits for a module another thread is importing).  Started once per
    process: the command line starts it before the engine, the runner again finds the same thread."""
    if _BACKGROUND_IMPORT and _BACKGROUND_IMPORT[0].is_alive():
        return _BACKGROUND_IMPORT[0]
    if "great_expectations" in sys.modules:
        return None

    def load() -> None:
        """The background import itself; the validating stage reports any error when it imports."""
        try:
            importlib.import_module("great_expectations")
        except ImportError:
            return

    thread = threading.Thread(target=load, name="import-great-expectations", daemon=True)
    thread.start()
    _BACKGROUND_IMPORT[:] = [thread]
    return thread


_BACKGROUND_IMPORT: list[threading.Thread] = []  # the import under way, if any


def great_expectations_run(df: DataFrame, expectations: list[Expectation], suite_name: str,
                           result_format: str = "BOOLEAN_ONLY") -> Any:
    """Validate ``df`` with an ephemeral Great Expectations context (nothing is written to disk)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (context.data_sources.add_spark(name=f"{suite_name}_source")
             .add_dataframe_asset(name=f"{suite_name}_batch")
             .add_batch_definition_whole_dataframe(f"{suite_name}_whole"))
    configured = []
    for exp in expectations:
        cls = getattr(gx.expectations, _class_name(exp.type), None)
        if cls is None:
            raise ValueError(f"unknown Great Expectations type {exp.type!r} in the suite of {suite_name}")
        configured.append(cls(**exp.kwargs))
    # Built whole and stored once (adding one by one rewrites the stored suite per expectation).
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=configured))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(data=batch, suite=suite, name=f"{suite_name}_validation"))
    return definition.run(batch_parameters={"dataframe": df}, result_format=result_format)


def run_suite(df: DataFrame, expectations: list[Expectation], suite_name: str) -> ValidationReport:
    """Great Expectations' verdict on every expectation, with the failing-row counts and examples of
    the row-level ones from one aggregation (see the module docstring)."""
    result = great_expectations_run(df, expectations, suite_name)
    rows, failing = failing_rows(df, expectations)
    by_config: dict[tuple[str, str | None], list[Any]] = {}
    for item in result.results:
        config = item.expectation_config
        by_config.setdefault((config.type, config.kwargs.get("column")), []).append(item)
    results = []
    for i, exp in enumerate(expectations):
        item = by_config[(exp.type, exp.column)].pop(0)
        error = None
        if item.exception_info and item.exception_info.get("raised_exception"):
            error = str(item.exception_info.get("exception_message"))[:500]
        count, examples = failing.get(i, (None, []))
        results.append(ExpectationResult(
            name=exp.name, type=exp.type, column=exp.column, success=bool(item.success), unexpected_count=count,
            element_count=rows if exp.row_level else None,
            examples=re.sub(r"\s+", " ", str(examples))[:300], error=error))
    return ValidationReport(suite_name, bool(result.success), results, result.to_json_dict())


def model_input_gate(df: DataFrame, contract: Contract, purpose: str) -> dict[str, Any]:
    """The data gate on model inputs (training set or scoring batch): the contract's suite,
    limited to the columns the inputs carry, plus a non-empty batch.  Fails closed."""
    expectations = [e for e in contract.expectations() if e.column is None or e.column in df.columns]
    report = run_suite(df, expectations, f"{contract.name}_{purpose}_inputs")
    failed = [f"{r.name}: {r.unexpected_count} unexpected, e.g. {r.examples}" if r.unexpected_count
              else f"{r.name}: {r.error or 'failed'}" for r in report.results if not r.success]
    summary = {"suite": report.suite, "expectations": len(report.results), "failed": len(failed)}
    if failed:
        raise StageFailure(f"data gate on the {purpose} inputs failed ({len(failed)} of {len(report.results)} "
                           f"expectations): {'; '.join(failed)}. Nothing was written; fix the inputs upstream",
                           {"data_gate": summary})
    return summary
