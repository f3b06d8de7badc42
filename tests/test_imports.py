"""Architecture: drive's layers import downward only, and no module imports itself back through others,
counting every import: at module level and inside functions and methods (``TYPE_CHECKING`` blocks, which
never run, excepted).

The layers, bottom to top (a module may import its own layer and those below):

    errors → io → video_io, resources → core → world → data → replay → policy → eval → train → study → commands → cli

``train`` sits above ``eval`` because training drives the policy closed loop through the one rollout
(:mod:`drive.eval.rollout`: DAgger, closed-loop selection); ``eval`` never imports ``train``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "drive"

LAYERS = (
    ("drive.errors",),
    ("drive.io",),
    ("drive.video_io", "drive.resources"),
    ("drive.core",),
    ("drive.world",),
    ("drive.data",),
    ("drive.replay",),
    ("drive.policy",),
    ("drive.eval",),
    ("drive.train",),
    ("drive.study",),
    ("drive.commands",),
    ("drive.cli",),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int | None:
    """Index of ``module``'s layer (None for the package's face, ``drive/__init__``)."""
    for i, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    return None


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """drive modules that ``path`` imports anywhere (module level, classes, functions), TYPE_CHECKING excepted."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def resolve(target: str) -> str | None:  # the module itself, or its nearest enclosing package
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                for child in node.orelse:
                    self.visit(child)
                return  # typing only, never executed
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            for alias in node.names:
                if alias.name.split(".")[0] == "drive" and (m := resolve(alias.name)):
                    found.add(m)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base.split(".")[0] != "drive":
                return
            for alias in node.names:  # `from drive.x import y` may import the submodule drive.x.y
                m = resolve(f"{base}.{alias.name}") if f"{base}.{alias.name}" in modules else resolve(base)
                if m:
                    found.add(m)

    Visitor().visit(ast.parse(path.read_text(), str(path)))
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in files}
    graph = {module_name(p): imports_of(p, modules) for p in files}
    # importing drive.a.b first runs drive/__init__ and drive/a/__init__: parents are implicit, not edges
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return cycles


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for every import from a lower layer into a higher one."""
    found = []
    for module, deps in sorted(graph.items()):
        here = layer_of(module)
        for dep in sorted(deps):
            there = layer_of(dep)
            if here is not None and there is not None and there > here:
                found.append(f"{module} -> {dep}")
    return found


def test_the_cycle_finder_finds_a_circle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions(tmp_path):
    graph = import_graph()
    assert "drive.train.loop" in graph["drive.train.dagger"]
    assert "drive.errors" in graph["drive.cli"]
    # drive.commands.train imports the training loop only inside run(): it must still be an edge
    assert "drive.train.loop" in graph["drive.commands.train"]


def test_the_layer_check_catches_an_upward_import():
    assert upward_imports({"drive.core.ltc": {"drive.eval.rollout"}, "drive.eval.rollout": {"drive.core.ltc"}}) == [
        "drive.core.ltc -> drive.eval.rollout"
    ]
    assert layer_of("drive.commands.study") > layer_of("drive.study.stages") > layer_of("drive.train.loop")


def test_every_module_has_a_layer():
    assert not [m for m in import_graph() if m != "drive" and layer_of(m) is None]


def test_no_import_circles_in_drive():
    cycles = find_cycles(import_graph())
    assert not cycles, "import circles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_upward_imports_in_drive():
    found = upward_imports(import_graph())
    assert not found, "upward imports: " + "; ".join(found)


def test_every_command_module_can_be_imported_by_name():
    """``import`` is a keyword: the verb lives in ``drive/commands/import_.py`` (``import drive.commands.import`` cannot be written)."""
    import keyword

    assert not [p.stem for p in (PACKAGE / "commands").glob("*.py") if keyword.iskeyword(p.stem)]


def test_test_files_have_unique_names():
    """The test folders are not packages: two test files of one name in two folders stop pytest's collection."""
    names = [p.name for p in (PACKAGE.parent / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
