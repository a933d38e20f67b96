"""The package reads in one direction: core -> training -> experiments -> plot and the CLI on top.

Every import of every module (at the top or inside a function) is an edge of the graph checked here,
so a lazy import cannot hide a cycle either.
"""

import ast
import subprocess
import sys

import pytest

from conftest import ROOT

PACKAGE = ROOT / "src" / "minidense"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
TOP = {"plot", "__main__"}  # what may import the experiment runner and draw


def imports_of(module):
    """The minidense modules ``module`` imports, anywhere in its file."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("minidense"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name for alias in node.names if (PACKAGE / f"{alias.name}.py").exists())
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("minidense."))
    return found - {module}


def test_the_import_graph_has_no_cycle():
    graph = {module: imports_of(module) for module in [*MODULES, "__main__"]}
    done, path = set(), []

    def visit(module):
        if module in path:
            cycle = path[path.index(module):] + [module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        path.append(module)
        for other in sorted(graph.get(module, ())):
            visit(other)
        path.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_nothing_below_the_figures_imports_them():
    for module in MODULES:
        if module not in TOP:
            assert "plot" not in imports_of(module), f"minidense.{module} imports minidense.plot"
    for module in ("training", "experiments"):
        assert "__main__" not in imports_of(module)


def test_the_option_schema_imports_nothing_of_the_library_but_its_argument_checks():
    assert imports_of("options") <= {"_checks"}
    assert imports_of("settings") <= {"options"}


def test_training_does_not_import_the_experiment_runner():
    below_experiments = [m for m in MODULES if m not in TOP | {"experiments"}]
    for module in below_experiments:
        assert "experiments" not in imports_of(module), f"minidense.{module} imports minidense.experiments"


@pytest.mark.parametrize("module", ["minidense", *(f"minidense.{m}" for m in MODULES), "minidense.__main__"])
def test_each_module_imports_on_its_own(module):
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""})
    assert done.returncode == 0, done.stderr


def test_import_minidense_loads_no_matplotlib():
    code = "import sys, minidense; print('matplotlib' in sys.modules, 'pandas' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""})
    assert done.stdout.split() == ["False", "False"], done.stderr
    lazily = subprocess.run([sys.executable, "-c", "import minidense; minidense.plot.image_grid"],
                            capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT / "src")})
    assert lazily.returncode == 0, lazily.stderr


def test_the_linter_is_clean():
    pytest.importorskip("ruff")
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
