"""The package's layers, read from its source: entry points -> runner -> stages -> ML -> data ->
runtime -> foundation, each importing only layers below it, with no cycles and the stages
independent of each other.  A forking team that breaks a rule learns it here, by name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / "{{ cookiecutter.package_name }}"
PACKAGE = PACKAGE_DIR.name
# Higher imports lower.  tools/ sit beside the pipeline: only the command line reaches them.  The
# legacy modules keep the import paths that model versions registered before the layers pickled.
LAYERS = {"foundation": 0, "runtime": 1, "data": 2, "ml": 3, "stages": 4, "runner": 5, "tools": 6, "entry": 7,
          "legacy": 8}
ENTRY, RUNNER, LEGACY = {"cli", "notebook", "__main__"}, {"pipeline"}, {"model", "segments"}
MAX_TOP_LEVEL_MODULES = 12
MAX_IMPORTS_IN_FUNCTIONS = 3


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([PACKAGE, *parts])


MODULES = {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def layer(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "foundation"
    if parts[0] in ("runtime", "data", "ml", "stages", "tools"):
        return parts[0]
    if parts[0] in LEGACY:
        return "legacy"
    return "entry" if parts[0] in ENTRY else "runner" if parts[0] in RUNNER else "foundation"


def resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The package's own modules an import statement names (``from . import x`` names module x)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            package = module.split(".")
            if MODULES[module].name != "__init__.py":
                package = package[:-1]
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    return sorted({n for n in names if n.split(".")[0] == PACKAGE and n in MODULES})


def imports(module: str) -> tuple[set[str], list[tuple[int, str]]]:
    """Own modules imported at module level (or under TYPE_CHECKING), and imports hidden in functions."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    top, hidden = set(), []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in resolve(module, child):
                    (hidden.append((child.lineno, target)) if in_function else top.add(target))
            elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                  and child.func.attr == "import_module"):
                hidden.append((child.lineno, "importlib.import_module"))
            visit(child, inner)

    visit(tree, False)
    return top - {module}, hidden


GRAPH = {module: imports(module)[0] for module in MODULES}


def test_no_import_cycles():
    order, state = [], {}

    def walk(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                cycle = [*path[path.index(target):], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                walk(target, [*path, target])
        state[module] = "done"
        order.append(module)

    for module in MODULES:
        if module not in state:
            walk(module, [module])


def test_each_layer_imports_only_layers_below_it():
    upward = []
    for module, targets in GRAPH.items():
        for target in targets:
            mine, theirs = layer(module), layer(target)
            if LAYERS[theirs] > LAYERS[mine] or (mine == theirs == "stages" and target != f"{PACKAGE}.stages"):
                upward.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert upward == [], "move what both need below them (ml/, data/, names.py)"


def test_the_runtime_is_the_only_code_that_knows_where_it_runs():
    markers = ("DATABRICKS_RUNTIME_VERSION", "databricks.feature_engineering", "cloudFiles", "pysail")
    leaks = [f"{module}: {marker}" for module, path in MODULES.items() if layer(module) not in ("runtime", "tools")
             for marker in markers if marker in path.read_text(encoding="utf-8")]
    assert leaks == []


def test_few_imports_hide_in_functions_and_each_says_why():
    hidden = [(module, line, target) for module in MODULES for line, target in imports(module)[1]]
    assert len(hidden) <= MAX_IMPORTS_IN_FUNCTIONS, hidden
    for module, line, target in hidden:
        lines = MODULES[module].read_text(encoding="utf-8").splitlines()
        function_start = max(i for i in range(line) if lines[i].lstrip().startswith("def "))
        docstring = " ".join(lines[function_start + 1:line - 1])
        assert '"""' in docstring and "import" in docstring, f"{module}:{line} imports {target} without saying why"


def test_the_top_level_stays_small():
    top_level = [p.name for p in PACKAGE_DIR.glob("*.py")]
    assert len(top_level) <= MAX_TOP_LEVEL_MODULES, sorted(top_level)


def test_the_logged_model_loads_without_spark():
    """What a serving endpoint imports to load the model: nothing of Spark, nothing of the pipeline."""
    seen, todo = set(), [f"{PACKAGE}.ml.flavor"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(GRAPH[module])
    for module in seen:
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        third_party = {n.module or "" for n in tree.body if isinstance(n, ast.ImportFrom)} | {
            a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
        assert not any(name.startswith("pyspark") for name in third_party), module
    assert not any(layer(m) in ("stages", "runner", "entry", "runtime") for m in seen), sorted(seen)
