"""The package's import graph: no cycle among `study/` modules, counting imports inside functions (a cycle hidden
in a function still ties two modules into one)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "study"


def _module(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST):
    """Every import statement of a module, at any depth (functions included), except under `if TYPE_CHECKING:`
    (type names only: never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in _imports(child))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Every `study.*` module and the `study.*` modules it imports anywhere in its body (functions included, type-
    checking blocks not);
    `from study import x` counts as an import of `study.x` where that is a module. A package's own `__init__` is not an
    edge of its submodules (Python runs it first either way)."""
    modules = {_module(p, package.parent): p for p in package.rglob("*.py") if "examples" not in p.parts}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith("study") and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as err:
        return list(err.args[1])
    return []


def test_no_import_cycle_among_study_modules():
    cycle = _cycle(import_graph())
    assert not cycle, f"import cycle: {' -> '.join(cycle)}"


def test_the_check_finds_a_cycle_hidden_in_a_function(tmp_path):
    package = tmp_path / "study"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from study.sub import b\n    return b\n")
    (package / "sub" / "b.py").write_text("from .. import a\n")
    (package / "c.py").write_text("import study.a\n")
    (package / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from study import a\n")
    graph = import_graph(package)
    assert graph["study.c"] == {"study.a"} and graph["study.a"] == {"study.sub.b"}
    assert graph["study.d"] == set()  # type names only: never imported when the code runs
    assert sorted(set(_cycle(graph))) == ["study.a", "study.sub.b"]
