"""The plan of the code, checked: import contracts (pyproject.toml's [tool.importlinter]), no import
circle between any two modules, a docstring first in every module, and no module over 500 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("proxy_app", "accounts", "gateway_site")
MAX_LINES = 500


def our_modules() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py")) if "migrations" not in p.parts]


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. every import circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.find_modules_directly_imported_by(module):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))  # import chains are deep; put the limit back after
    try:
        for module in sorted(graph.modules):
            if module not in index:
                visit(module)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_no_import_circle_between_modules():
    # Imports inside functions count too: a late import is still a dependency.
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    assert cycles(graph) == []


def room(module: str) -> str:
    """The package a module belongs to on the plan: proxy_app.<package> (or its top module),
    accounts as a whole, and gateway_site module by module (settings and wiring apart)."""
    parts = module.split(".")
    if parts[0] == "accounts":
        return "accounts"
    return ".".join(parts[:2])


def test_no_import_circle_between_packages():
    modules = grimp.build_graph(*PACKAGES, include_external_packages=False)
    rooms = grimp.ImportGraph()
    for module in modules.modules:
        rooms.add_module(room(module))
        for target in modules.find_modules_directly_imported_by(module):
            if room(module) != room(target):
                rooms.add_import(importer=room(module), imported=room(target))
    assert cycles(rooms) == []


def test_the_circle_finder_sees_a_circle():
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=a, imported=b)
    assert cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_every_module_opens_with_a_docstring_and_stays_small():
    undocumented, large = [], []
    for path in our_modules():
        source = path.read_text()
        if not source.strip():
            continue  # an empty package marker
        if not ast.get_docstring(ast.parse(source)):
            undocumented.append(str(path.relative_to(ROOT)))
        if source.count("\n") > MAX_LINES:
            large.append(f"{path.relative_to(ROOT)}: {source.count(chr(10))} lines")
    assert undocumented == []
    assert large == []
