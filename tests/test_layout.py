"""The package's layout keeps its promises: stages import downwards only, in circles never;
the dev stand-ins stay out of the product; modules stay small and the top level short.

Everything is read with ``ast`` (nothing is imported), so a circle that Python happens to
tolerate today, through a lazy attribute or an import order, is still found.

What counts as an import:
- *module level*: every import statement that runs when the module is imported,
  including those under ``if TYPE_CHECKING:`` (a type-only circle is still a circle in
  the design, and the next refactoring turns it into a real one), in ``try`` blocks and
  class bodies. Imports inside a function body are *lazy*: they do not take part in
  circles, but they do count for "who may import the dev tools".
- ``from watchdog.a import b`` is an import of the module ``watchdog.a.b`` when that is a
  module, else of ``watchdog.a`` (the name is defined in it). Importing a module first
  imports its parent packages, so ``watchdog.a.b`` also depends on ``watchdog.a``.

Circles are checked at two levels:
- *modules*: the module-level graph has no circle at all (its strongly connected
  components are single modules);
- *packages*: no two packages (``watchdog.rules``, ``watchdog.slack.alerts``, …: any
  two that do not contain one another) import each other, each way through any of their
  modules; and the stages (``watchdog.<name>``: the subpackages and the top-level
  modules) form no longer circle either (a → b → c → a). Inside one package, its
  modules may import each other's package freely, as long as no module circle results.

A known violation, being fixed on another branch, is listed below with the reason; the
list must only shrink.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "watchdog"
DEVTOOLS = "watchdog.devtools"
MAX_TOP_LEVEL_MODULES = 12
MAX_LINES = 420

# Package pairs allowed to import each other (none: the sample book moved to domain/).
KNOWN_TWO_WAY: list[frozenset[str]] = []


@dataclass(frozen=True, slots=True)
class Import:
    source: str
    target: str
    line: int
    lazy: bool  # inside a function body: runs when the function is called


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _with_parents(name: str) -> Iterator[str]:
    """``name`` and the packages Python imports before it (but not ``watchdog`` itself,
    whose ``__init__`` imports nothing and is everyone's parent)."""
    parts = name.split(".")
    for end in range(2, len(parts) + 1):
        yield ".".join(parts[:end])


def _resolve(source: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The package modules an import statement loads."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            name = alias.name
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name:
                yield name
        return
    if node.level:  # relative: from the importing module's package
        anchor = source if _is_package(source) else source.rpartition(".")[0]
        for _ in range(node.level - 1):
            anchor = anchor.rpartition(".")[0]
        base = f"{anchor}.{node.module}" if node.module else anchor
    else:
        base = node.module or ""
    if base not in MODULES:
        return
    for alias in node.names:
        child = f"{base}.{alias.name}"
        yield child if child in MODULES else base


class _Collector(ast.NodeVisitor):
    def __init__(self, source: str) -> None:
        self.source = source
        self.depth = 0  # function bodies entered
        self.found: list[Import] = []

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        for target in _resolve(self.source, node):
            for loaded in _with_parents(target):
                if loaded != self.source:
                    self.found.append(Import(self.source, loaded, node.lineno, self.depth > 0))

    visit_Import = visit_ImportFrom = _import


def _imports() -> list[Import]:
    found: list[Import] = []
    for name, path in MODULES.items():
        collector = _Collector(name)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        found.extend(collector.found)
    return found


IMPORTS = _imports()


def _graph(imports: list[Import]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for imp in imports:
        if not imp.lazy:
            graph[imp.source].add(imp.target)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of ``graph`` with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.add(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(frozenset(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _show(circle: frozenset[str], graph: dict[str, set[str]]) -> str:
    edges = sorted(f"{a} -> {b}" for a in circle for b in graph.get(a, ()) if b in circle)
    return "\n  ".join(edges)


def _packages() -> list[str]:
    return sorted(name for name in MODULES if _is_package(name) and name != "watchdog")


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _stage(module: str) -> str:
    """``watchdog.rules.model`` → ``watchdog.rules``; ``watchdog.cli`` stays itself."""
    return ".".join(module.split(".")[:2])


# ---- the tests ------------------------------------------------------------------------------


def test_the_import_reader_sees_the_package() -> None:
    """The AST reader finds known edges, TYPE_CHECKING imports included, and the CLI's
    lazy imports as lazy (so the checks below are not vacuous)."""
    edges = {(imp.source, imp.target, imp.lazy) for imp in IMPORTS}
    assert ("watchdog.operator", "watchdog.polaris.client", False) in edges
    assert ("watchdog.store", "watchdog.domain.samples", False) in edges
    assert ("watchdog.cli", "watchdog.app", True) in edges
    assert ("watchdog.cli", "watchdog.devtools.demo", True) in edges
    type_checking = [
        path for path in MODULES.values() if "if TYPE_CHECKING:" in path.read_text(encoding="utf-8")
    ]
    for path in type_checking:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        guarded = [
            node
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
            for node in ast.walk(block)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("watchdog")
        ]
        source = _module_name(path)
        for node in guarded:
            assert any(imp.source == source and imp.line == node.lineno for imp in IMPORTS)


def test_no_import_circle_between_modules() -> None:
    """No module imports itself back at module level, however long the way round."""
    graph = _graph(IMPORTS)
    circles = _circles(graph)
    assert not circles, "import circles:\n  " + "\n\n  ".join(_show(c, graph) for c in circles)


def test_no_two_packages_import_each_other() -> None:
    """For any two packages, at most one imports (a module of) the other."""
    graph = _graph(IMPORTS)
    packages = _packages()

    def uses(a: str, b: str) -> list[str]:
        return sorted(
            f"{source} -> {target}"
            for source, targets in graph.items()
            if _inside(source, a)
            for target in targets
            if _inside(target, b)
        )

    both_ways = []
    for i, a in enumerate(packages):
        for b in packages[i + 1 :]:
            if _inside(a, b) or _inside(b, a) or frozenset({a, b}) in KNOWN_TWO_WAY:
                continue
            there, back = uses(a, b), uses(b, a)
            if there and back:
                both_ways.append(f"{a} <-> {b}:\n    " + "\n    ".join(there + back))
    assert not both_ways, "packages importing each other:\n  " + "\n  ".join(both_ways)


def test_product_code_never_imports_the_devtools() -> None:
    """Only the devtools themselves and the CLI's command functions (lazily) import
    watchdog.devtools: the bot never runs against a stand-in by accident."""
    offenders = [
        f"{imp.source}:{imp.line} imports {imp.target}" + ("" if imp.lazy else " (module level)")
        for imp in IMPORTS
        if _inside(imp.target, DEVTOOLS)
        and not _inside(imp.source, DEVTOOLS)
        and not (imp.source == "watchdog.cli" and imp.lazy)
    ]
    assert not offenders, "\n".join(offenders)


def test_the_bottom_modules_import_nothing_from_the_package() -> None:
    """errors.py and domain/names.py sit below everything, so anything may import them."""
    for bottom in ("watchdog.errors", "watchdog.domain.names"):
        loaded = {imp.target for imp in IMPORTS if imp.source == bottom}
        assert loaded <= {"watchdog.domain"}, (bottom, loaded)  # its own package only


def test_the_top_level_stays_short() -> None:
    """At most 12 modules side by side directly in watchdog/ (__init__ and __main__
    included): the stages live in their subpackages."""
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_no_module_is_over_420_lines() -> None:
    """One concept per module: a module past 420 lines is doing two things."""
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in MODULES.values()
    }
    offenders = {path: lines for path, lines in sizes.items() if lines > MAX_LINES}
    for path, lines in sorted(offenders.items(), key=lambda item: -item[1]):
        print(f"{path}: {lines} lines (max {MAX_LINES})")
    assert not offenders, offenders


def test_no_circle_between_stages() -> None:
    """Between the stages (watchdog.<name>), imports go one way round: no a -> b -> c -> a."""
    stages: dict[str, set[str]] = defaultdict(set)
    for source, targets in _graph(IMPORTS).items():
        for target in targets:
            if _stage(source) != _stage(target):
                stages[_stage(source)].add(_stage(target))
    circles = [c for c in _circles(stages) if c not in KNOWN_TWO_WAY]
    assert not circles, "stage circles:\n  " + "\n\n  ".join(_show(c, stages) for c in circles)
