"""The package's import layering (DESIGN.md section 6): units (subpackages and top-level
modules) import one way, and the command runner stays at the bottom."""

from __future__ import annotations

import ast
from pathlib import Path

import msca_fast

PACKAGE = Path(msca_fast.__file__).parent


def unit_of(module: str) -> str:
    """"msca_fast.training.trainer" -> "training"; "msca_fast" -> "msca_fast"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def unit_imports() -> dict[str, set[str]]:
    """unit -> the other units its modules import at module level."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        unit = unit_of(module)
        targets = graph.setdefault(unit, set())
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "msca_fast" else [node.module]
            else:
                continue
            targets.update(unit_of(n) for n in names if n.startswith("msca_fast."))
        targets.discard(unit)
    return graph


def test_units_import_one_way():
    graph = unit_imports()
    done: set[str] = set()

    def visit(unit: str, path: tuple[str, ...]) -> None:
        assert unit not in path, "import cycle: " + " -> ".join((*path, unit))
        if unit in done:
            return
        for target in graph.get(unit, ()):
            visit(target, (*path, unit))
        done.add(unit)

    for unit in graph:
        visit(unit, ())


def test_the_command_runner_imports_only_the_error_types():
    assert unit_imports()["cli"] == {"errors"}
