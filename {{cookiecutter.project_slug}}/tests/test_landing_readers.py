"""Sail lane: the local readers honour Auto Loader's option semantics on files written the way
R's ``write.csv`` and pandas write them: quoted headers, a row-name column, ``NA`` for missing
values, a UTF-8 BOM, CRLF line ends and quoted fields that span lines; JSON lines, and with
``multiLine`` one JSON document per file.  An option the local reader cannot honour is an error
that names it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import functions as F

from {{ cookiecutter.package_name }}.config import ConfigError
from {{ cookiecutter.package_name }}.contract import load_contract
from {{ cookiecutter.package_name }}.names import CORRUPT, RESCUED
from {{ cookiecutter.package_name }}.runtime.landing import landing_columns, read_landing_file

pytestmark = pytest.mark.sail

FRAME = pd.DataFrame({
    "customer id": ["c1", "c2", "c3", "c4"],
    "plan": ["basic", None, "pro", 'say "hi"'],
    "monthly charges": [10.5, None, 7.25, 3.0],
    "note": ["first line\nsecond line", "plain", "", "x,y"],
    "joined": ["2024-01-31", "2024-02-29", None, "2024-03-01"],
})


def contract_for(root: Path, options: dict[str, str], file_format: str = "csv") -> object:
    spec = {
        "name": "people", "format": file_format, "path": "raw/people", "options": options,
        "primary_key": ["customer_id"], "event_time": None,
        "columns": {"customer_id": {"source": "customer id", "required": True}, "plan": "string",
                    "monthly_charges": {"source": "monthly charges", "type": "double"}, "note": "string",
                    "joined": {"type": "date"}},
        "gold": {"table": "people", "keys": ["customer_id"], "timestamp": "_ingest_date"},
    }
    path = root / "people.yml"
    path.write_text(json.dumps(spec))
    return load_contract(path, root)


def write_like_r(frame: pd.DataFrame, path: Path, eol: str = "\n") -> None:
    """``write.csv(frame, path)``: the header and every string quoted (inner quotes doubled), numbers
    bare, ``NA`` bare for missing values, and a first column of quoted row names headed ``""``."""
    def cell(value: object) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return "NA"
        if isinstance(value, str):
            return '"' + value.replace('"', '""') + '"'
        return repr(value)

    lines = [",".join(cell(str(c)) for c in ["", *frame.columns])]
    lines += [",".join([cell(str(i + 1)), *(cell(v) for v in row)]) for i, row in enumerate(frame.itertuples(index=False))]
    path.write_bytes((eol.join(lines) + eol).encode("utf-8"))


def rows(sail_spark, path: Path, contract) -> list[dict]:
    frame = read_landing_file(sail_spark, path, contract, path.parent / "scratch")
    return [r.asDict() for r in frame.orderBy(F.asc_nulls_last("customer_id")).collect()]


def test_r_write_csv_with_quoted_header_row_names_na_and_crlf(sail_spark, tmp_path):
    path = tmp_path / "r.csv"
    write_like_r(FRAME, path, eol="\r\n")  # CRLF, as R writes on Windows
    contract = contract_for(tmp_path, {"header": "true", "nullValue": "NA", "multiLine": "true"})
    got = rows(sail_spark, path, contract)
    assert [r["customer_id"] for r in got] == ["c1", "c2", "c3", "c4"]
    assert got[0]["note"] == "first line\nsecond line" and got[3]["note"] == "x,y"
    assert got[1]["plan"] is None and got[1]["monthly_charges"] is None and got[2]["joined"] is None
    assert got[3]["plan"] == 'say "hi"' and got[0]["monthly_charges"] == "10.5"
    assert all(r[CORRUPT] is None for r in got)
    assert [json.loads(r[RESCUED]) for r in got] == [{"_c0": str(i)} for i in range(1, 5)], "R's row names"
    assert landing_columns(sail_spark, path, contract) == ["_c0", *FRAME.columns]


def test_pandas_to_csv_with_a_bom_and_the_default_options(sail_spark, tmp_path):
    path = tmp_path / "pandas.csv"
    FRAME.assign(note=FRAME["note"].str.replace("\n", " ")).to_csv(path, index=False, encoding="utf-8-sig")
    contract = contract_for(tmp_path, {"header": "true"})
    got = rows(sail_spark, path, contract)
    assert got[0]["customer_id"] == "c1", "the BOM is not part of the first header name"
    assert got[1]["plan"] is None and got[2]["note"] is None, "empty fields are null, as in Spark"
    assert got[3]["plan"] == 'say "hi"' and all(r[RESCUED] is None and r[CORRUPT] is None for r in got)


def test_pandas_to_parquet_with_nanosecond_timestamps(sail_spark, tmp_path):
    """pandas writes datetime64[ns] as Parquet nanoseconds, which Spark types cannot hold."""
    path = tmp_path / "pandas.parquet"
    FRAME.assign(joined=pd.to_datetime(FRAME["joined"])).to_parquet(path)
    got = rows(sail_spark, path, contract_for(tmp_path, {}, file_format="parquet"))
    assert [r["joined"] for r in got] == ["2024-01-31 00:00:00", "2024-02-29 00:00:00", None, "2024-03-01 00:00:00"]
    assert got[1]["monthly_charges"] is None and got[0]["monthly_charges"] == "10.5"


def test_semicolons_latin1_comments_empty_values_and_a_malformed_line(sail_spark, tmp_path):
    path = tmp_path / "latin1.csv"
    text = ("# exported by the billing system\n"
            "customer id;plan;monthly charges;note;joined\n"
            "c1;\"\";9,99;café;31/01/2024\n"
            "c2;basic;1;ok;29/02/2024;extra\n")
    path.write_bytes(text.encode("latin-1"))
    contract = contract_for(tmp_path, {"header": "true", "sep": ";", "encoding": "ISO-8859-1", "comment": "#",
                                       "emptyValue": "<empty>", "dateFormat": "dd/MM/yyyy"})
    got = rows(sail_spark, path, contract)
    assert got[0]["note"] == "café" and got[0]["plan"] == "<empty>"
    assert got[1][CORRUPT] == "c2;basic;1;ok;29/02/2024;extra" and got[1]["customer_id"] is None
    assert contract.column("joined").format == "dd/MM/yyyy", "dateFormat is the date columns' default format"


def test_an_option_the_local_reader_cannot_honour_is_named(sail_spark, tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("customer id\nc1\n")
    contract = contract_for(tmp_path, {"header": "true", "mode": "FAILFAST", "ignoreLeadingWhiteSpace": "true"})
    with pytest.raises(ConfigError, match=r"people.yml: options \['ignoreLeadingWhiteSpace', 'mode'\] cannot be "
                                          r"honoured by the local csv reader"):
        read_landing_file(sail_spark, path, contract, tmp_path / "scratch")
    with pytest.raises(ConfigError, match=r"options.header is 'yes'. Fix: use true or false"):
        read_landing_file(sail_spark, path, contract_for(tmp_path, {"header": "yes"}), tmp_path / "scratch")


def test_a_file_with_none_of_the_contracts_columns_says_which_it_has(sail_spark, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("order_no,amount\nO-1,3\n")
    with pytest.raises(ConfigError, match=r"none of the contract's columns \['customer id', .*\] is in .*other.csv, "
                                          r"whose columns are \['order_no', 'amount'\]"):
        read_landing_file(sail_spark, path, contract_for(tmp_path, {"header": "true"}), tmp_path / "scratch")


def test_json_multiline_reads_an_array_document_or_one_object_and_keeps_a_broken_one_whole(sail_spark, tmp_path):
    records = [{"customer id": "c1", "plan": "basic", "monthly charges": 10.5, "note": "two\nlines", "referrer": "ad"},
               {"customer id": "c2", "plan": None, "joined": "2024-02-29"}]
    array = tmp_path / "array.json"
    array.write_text(json.dumps(records, indent=2))
    (tmp_path / "object.json").write_text(json.dumps({"customer id": "c3", "monthly charges": 7}, indent=2))
    broken_text = '[{"customer id": "c4",\n  "plan": "basic"\n'
    (tmp_path / "broken.json").write_text(broken_text)
    contract = contract_for(tmp_path, {"multiLine": "true"}, file_format="json")

    got = rows(sail_spark, array, contract)
    assert [(r["customer_id"], r["plan"], r["monthly_charges"], r["joined"]) for r in got] == [
        ("c1", "basic", "10.5", None), ("c2", None, None, "2024-02-29")]
    assert got[0]["note"] == "two\nlines" and json.loads(got[0][RESCUED]) == {"referrer": "ad"}
    assert all(r[CORRUPT] is None for r in got)
    assert landing_columns(sail_spark, array, contract) == [
        "customer id", "plan", "monthly charges", "note", "referrer", "joined"], "in order of appearance"
    assert [(r["customer_id"], r["monthly_charges"]) for r in rows(sail_spark, tmp_path / "object.json", contract)] == [
        ("c3", "7")]
    broken = rows(sail_spark, tmp_path / "broken.json", contract)
    assert len(broken) == 1 and broken[0][CORRUPT] == broken_text and broken[0]["customer_id"] is None, \
        "a document that does not parse is one malformed record, as in Auto Loader"

    as_lines = rows(sail_spark, array, contract_for(tmp_path, {}, file_format="json"))
    assert all(r[CORRUPT] is not None and r["customer_id"] is None for r in as_lines), "without multiLine: JSON lines"
    with pytest.raises(ConfigError, match=r"options \['allowComments'\] cannot be honoured by the local json reader"):
        read_landing_file(sail_spark, array, contract_for(tmp_path, {"multiLine": "true", "allowComments": "true"},
                                                          file_format="json"), tmp_path / "scratch")
