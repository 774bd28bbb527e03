"""Check the imports of a package: no private name taken from another module, no import cycle.

Usage: python scripts/import_checks.py [SOURCE_ROOT] [--package NAME] [--scripts DIR ...];
exits 1 on any finding. Every import counts, those inside functions too (only
``if TYPE_CHECKING:`` blocks are left out: they never run). A private name is one that starts
with a single underscore; importing it (``from adamezo.noise import _x``) or reaching it through
an imported module (``noise._x``, ``adamezo.noise._x``) from another module is reported. The
scripts of ``--scripts`` directories (default: benchmarks and examples) are held to the same rule,
against the package and against each other (each is a top-level module there, as when it runs).
The layers themselves are import-linter's job (pyproject.toml).

Private members are checked too, by name (Python has no types to go by): ``obj._name``, where
``obj`` is not ``self``, ``cls`` or ``super()``, is reported when ``_name`` is a method of a class,
or an attribute a class sets on ``self``, in other modules of the package and in none of the
file's own classes (``optimizer._shift(...)`` from outside the optimizers), in the package and in
the scripts alike. A name that the file's own classes also define is taken as the file's own:
that case goes unreported.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` under ``root``."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def scripts(directory: Path) -> dict[str, Path]:
    """Module name -> file for the scripts directly in ``directory``: each runs with that
    directory on ``sys.path``, so each is a top-level module to its neighbours."""
    return {path.stem: path for path in sorted(directory.glob("*.py"))}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, except the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(module: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[int, str, str]]:
    """(line, imported module, imported name or "") for each import in ``module``."""
    for line, source, name, _local in _bindings(module, path):
        yield line, source, name


def _bindings(module: str, path: Path) -> Iterator[tuple[int, str, str, str]]:
    """(line, imported module, imported name or "", its ``as`` name or "") per import."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, "", alias.asname or ""
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node, path.name == "__init__.py")
            for alias in node.names:
                yield node.lineno, source, alias.name, alias.asname or ""


def _dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ["a", "b", "c"]; None for anything but names joined by dots."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else [*inner, node.attr]
    return None


def _private_names_taken(
    module: str, path: Path, known: dict[str, Path], ours: set[str]
) -> Iterator[str]:
    """Where ``module`` (at ``path``) imports or reaches a private name of another module whose
    top-level name is in ``ours``; ``known`` names every module of ours."""
    bound: dict[str, str] = {}  # local name -> module of ours it stands for
    for line, source, name, alias in _bindings(module, path):
        top = source.split(".")[0]
        if top not in ours or source == module:
            continue
        if name and f"{source}.{name}" in known:
            bound[alias or name] = f"{source}.{name}"  # a module imported by name
        elif name and _is_private(name):
            yield f"{path}:{line}: imports {name} from {source}"
        elif not name:  # ``import a.b`` binds a; ``import a.b as x`` binds x to a.b
            bound[alias or top] = source if alias else top
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Attribute) or not _is_private(node.attr):
            continue
        names = _dotted(node.value)
        if not names or names[0] not in bound:
            continue
        target = ".".join([bound[names[0]], *names[1:]])
        if target in known and target != module:
            yield f"{path}:{node.lineno}: reaches {node.attr} of {target}"


def private_imports(root: Path, package: str) -> list[str]:
    """Where a module takes another module's private name."""
    known = modules(root, package)
    return [
        problem
        for module, path in known.items()
        for problem in _private_names_taken(module, path, known, {package})
    ]


def script_private_imports(directory: Path, root: Path, package: str) -> list[str]:
    """Where a script in ``directory`` takes a private name of the package (under ``root``) or
    of another script there."""
    own = scripts(directory)
    known = modules(root, package) | own
    return [
        problem
        for module, path in own.items()
        for problem in _private_names_taken(module, path, known, {package, *own})
    ]


def private_members(root: Path, package: str) -> dict[str, set[Path]]:
    """Private name -> the files whose classes define it (a method, or ``self._name = ...``)."""
    owners: dict[str, set[Path]] = {}
    for path in modules(root, package).values():
        for name in _class_members(ast.parse(path.read_text(), filename=str(path))):
            owners.setdefault(name, set()).add(path.resolve())
    return owners


def _class_members(tree: ast.AST) -> set[str]:
    names = set()
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        for node in ast.walk(cls):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(node.name)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
            ):
                names.add(node.attr)
    return {name for name in names if _is_private(name)}


def _own_receiver(node: ast.expr) -> bool:
    """``self``, ``cls`` or ``super()``: a class reaching its own members."""
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"
    )


def private_reaches(root: Path, package: str, also: Sequence[Path] = ()) -> list[str]:
    """Where a file of ``package`` (or under a directory of ``also``) reaches a private member of
    another module's classes (see the module docstring)."""
    owners = private_members(root, package)
    files = [*modules(root, package).values()]
    files += [path for folder in also for path in sorted(folder.rglob("*.py"))]
    found = []
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        own = _class_members(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and _is_private(node.attr)
                and node.attr in owners
                and node.attr not in own
                and path.resolve() not in owners[node.attr]
                and not _own_receiver(node.value)
            ):
                where = ", ".join(
                    sorted(str(p.relative_to(root.resolve())) for p in owners[node.attr])
                )
                found.append(
                    f"{path}:{node.lineno}: reaches {ast.unparse(node)} (private to {where})"
                )
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (a name that is a submodule counts as it)."""
    known = modules(root, package)
    graph: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        for _line, source, name in imports(module, path, known):
            target = f"{source}.{name}" if f"{source}.{name}" in known else source
            if target in known and target != module:
                graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="src", help="the directory holding the package")
    parser.add_argument("--package", default="adamezo")
    parser.add_argument(
        "--scripts",
        nargs="*",
        default=["benchmarks", "examples"],
        help="directories of scripts that use the package (none: only the package is checked)",
    )
    args = parser.parse_args()
    root = Path(args.root)
    problems = private_imports(root, args.package)
    for directory in args.scripts:
        problems += script_private_imports(Path(directory), root, args.package)
    problems += private_reaches(root, args.package, [Path(d) for d in args.scripts])
    problems += [
        "import cycle: " + " <-> ".join(c) for c in cycles(import_graph(root, args.package))
    ]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
