"""Great Expectations on a batch: the suite is derived from the data contract plus the
versioned expectation file in ``conf/expectations/``.  The report is kept as JSON and as rows
of a summary table; row-level expectations are also applied row by row (``data/quality.py``) so
failing rows can be quarantined, and the two counts agree."""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from typing import Any

from pyspark.sql import DataFrame

from ..context import StageFailure
from ..contract import Contract, Expectation


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


def run_suite(df: DataFrame, expectations: list[Expectation], suite_name: str) -> ValidationReport:
    """Validate ``df`` with an ephemeral Great Expectations context (nothing is written to disk)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (context.data_sources.add_spark(name=f"{suite_name}_source")
             .add_dataframe_asset(name=f"{suite_name}_batch")
             .add_batch_definition_whole_dataframe(f"{suite_name}_whole"))
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    names = []
    for exp in expectations:
        cls = getattr(gx.expectations, _class_name(exp.type), None)
        if cls is None:
            raise ValueError(f"unknown Great Expectations type {exp.type!r} in the suite of {suite_name}")
        suite.add_expectation(cls(**exp.kwargs))
        names.append(exp.name)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(data=batch, suite=suite, name=f"{suite_name}_validation"))
    result = definition.run(batch_parameters={"dataframe": df}, result_format="BASIC")
    by_config = {}
    for item in result.results:
        config = item.expectation_config
        key = (config.type, config.kwargs.get("column"))
        error = None
        if item.exception_info and item.exception_info.get("raised_exception"):
            error = str(item.exception_info.get("exception_message"))[:500]
        by_config.setdefault(key, []).append(ExpectationResult(
            name="",
            type=config.type,
            column=config.kwargs.get("column"),
            success=bool(item.success),
            unexpected_count=item.result.get("unexpected_count"),
            element_count=item.result.get("element_count"),
            examples=re.sub(r"\s+", " ", str(item.result.get("partial_unexpected_list", [])[:5]))[:300],
            error=error,
        ))
    results = []
    for exp, name in zip(expectations, names, strict=True):
        found = by_config[(exp.type, exp.column)].pop(0)
        found.name = name
        results.append(found)
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
