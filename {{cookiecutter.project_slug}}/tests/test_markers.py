"""The ``bundle`` marker is what lets the template's harness run the rest of this suite once per
distinct package-and-configuration instead of once per option set: a test that reads the bundle
(databricks.yml, resources/, notebooks/, bundle-check) must carry it.  Checked from the source."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# What a test names when it reads the bundle itself (runs read only the targets, through config.py).
BUNDLE_WORDS = ("databricks.yml", "resources", "notebooks", "bundle-check", "bundle_check", "project_copy")


def marks(decorators: list[ast.expr]) -> set[str]:
    """Marker names of ``@pytest.mark.<name>`` decorators (called or not)."""
    names = set()
    for decorator in decorators:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute) \
                and target.value.attr == "mark":
            names.add(target.attr)
    return names


def module_marks(tree: ast.Module) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                for t in node.targets):
            values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            return {v.attr for v in values if isinstance(v, ast.Attribute)}
    return set()


def unmarked_bundle_readers(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    if "bundle" in module_marks(tree):
        return []
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            text = ast.get_source_segment(source, node) or ""
            if any(word in text for word in BUNDLE_WORDS) and "bundle" not in marks(node.decorator_list):
                found.append(f"{path.name}::{node.name}")
    return found


def test_every_test_that_reads_the_bundle_is_marked_bundle():
    found = [name for path in sorted(TESTS.glob("test_*.py")) if path != Path(__file__)
             for name in unmarked_bundle_readers(path)]
    assert found == [], "mark these @pytest.mark.bundle (they read the bundle): " + ", ".join(found)


def test_the_check_sees_an_unmarked_reader(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text("import pytest\n\n\ndef test_reads(project_copy):\n    pass\n\n\n"
                     "@pytest.mark.bundle\ndef test_marked():\n    open('databricks.yml')\n")
    assert unmarked_bundle_readers(probe) == ["test_probe.py::test_reads"]
    probe.write_text("import pytest\n\npytestmark = pytest.mark.bundle\n\n\ndef test_reads(project_copy):\n    pass\n")
    assert unmarked_bundle_readers(probe) == []
