"""Notebooks are widgets -> one package call; this is that call, with a stand-in dbutils."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }} import notebook


class FakeWidgets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.declared: list[str] = []

    def text(self, name: str, default: str) -> None:
        self.declared.append(name)
        self.values.setdefault(name, default)

    def get(self, name: str) -> str:
        return self.values[name]


class FakeDbutils:
    def __init__(self, values: dict[str, str]) -> None:
        self.widgets = FakeWidgets(values)


def test_widgets_become_cli_arguments():
    args = notebook.notebook_args({"target": "staging", "catalog": "c", "schema": "dev_me_s", "run_id": "42"},
                                  ("bootstrap",))
    assert args == ["run", "bootstrap", "--target", "staging", "--catalog", "c", "--schema", "dev_me_s",
                    "--run-id", "42"]
    assert notebook.notebook_args({"target": "", "catalog": "", "schema": "", "run_id": ""}, ("a", "b")) == [
        "run", "a", "b", "--target", "dev"]


def test_run_stage_passes_widgets_and_fails_the_task_on_error(monkeypatch):
    calls = []
    monkeypatch.setattr(notebook, "main", lambda args: calls.append(args) or 0)
    dbutils = FakeDbutils({"target": "prod", "catalog": "prod"})
    notebook.run_stage(dbutils, "bootstrap")
    assert dbutils.widgets.declared == list(notebook.WIDGETS)
    assert calls == [["run", "bootstrap", "--target", "prod", "--catalog", "prod"]]

    monkeypatch.setattr(notebook, "main", lambda args: 1)
    with pytest.raises(RuntimeError, match="bootstrap failed with exit code 1"):
        notebook.run_stage(dbutils, "bootstrap")
