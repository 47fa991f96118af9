"""Who imports whom: the filesystem layer stands without the database layer."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path


def test_the_scanner_imports_neither_the_orm_nor_sqlalchemy():
    code = (
        "import json, sys; import skillmeat_cache.scanner; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('skillmeat_cache', 'sqlalchemy'))))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert "skillmeat_cache.models" not in loaded
    assert not [m for m in loaded if m.startswith("sqlalchemy")]
    assert set(loaded) == {
        "skillmeat_cache",
        "skillmeat_cache.config_files",
        "skillmeat_cache.deployed",
        "skillmeat_cache.discovery",
        "skillmeat_cache.errors",
        "skillmeat_cache.fingerprint",
        "skillmeat_cache.formats",
        "skillmeat_cache.hashing",
        "skillmeat_cache.layout",
        "skillmeat_cache.profiles",
        "skillmeat_cache.reader",
        "skillmeat_cache.scanner",
        "skillmeat_cache.values",
    }


def test_a_reader_process_checks_fingerprints_without_the_parsers(tmp_path):
    """A rescan's reader process imports the reader (YAML, TOML, frontmatter) only when a
    project turns out changed: it starts in a third of the time."""
    project = tmp_path / "p"
    (project / ".claude" / "agents").mkdir(parents=True)
    (project / ".claude" / "agents" / "a.md").write_text("---\ndescription: a\n---\n")
    code = (
        "import json, sys\n"
        "from skillmeat_cache.readers import read_one\n"
        "from skillmeat_cache.fingerprint import project_fingerprint\n"
        f"path = {str(project)!r}\n"
        "heavy = lambda: sorted(m for m in sys.modules if m.split('.')[0] in ('yaml', 'frontmatter', 'tomllib')\n"
        "                       or m in ('skillmeat_cache.reader', 'skillmeat_cache.formats'))\n"
        "assert read_one(path, project_fingerprint(path)).kind == 'unchanged'\n"
        "before = heavy()\n"
        "assert read_one(path, 'another').kind == 'read'\n"
        "print(json.dumps([before, heavy()]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    before, after = json.loads(result.stdout)
    assert before == []
    assert {"yaml", "frontmatter", "tomllib", "skillmeat_cache.reader"} <= set(after)


# --------------------------------------------------------------------------- the static import graph

PACKAGE = Path(__file__).resolve().parents[2] / "skillmeat_cache"
ROOT = PACKAGE.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    found["containers"] = ROOT / "containers.py"
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules ``name`` imports (at any depth, in functions too), not counting
    ``if TYPE_CHECKING:`` blocks: they never run."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped = {
        id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node) for n in ast.walk(node)
    }
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            # the deepest known module the target names (``from . import base`` names a module)
            parts = target.split(".")
            for end in range(len(parts), 0, -1):
                candidate = ".".join(parts[:end])
                if candidate in known or candidate.split(".")[0] in ("sqlalchemy", "alembic", "dependency_injector"):
                    if candidate != name:
                        out.add(candidate if candidate in known else candidate.split(".")[0])
                    break
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _package_parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_the_package_has_no_import_cycle():
    graph = _graph()
    # Importing ``skillmeat_cache.x`` runs ``skillmeat_cache/__init__.py`` first, which only
    # declares lazy names: an edge to a parent package is not a cycle.
    for name, targets in graph.items():
        targets -= _package_parents(name)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo.extend(graph.get(node, ()))
    return seen


def _path_to(graph: dict[str, set[str]], start: str, wanted: Callable[[str], bool]) -> list[str] | None:
    """The shortest import chain from ``start`` to a module ``wanted`` accepts, or None."""
    parents: dict[str, str | None] = {start: None}
    todo = deque([start])
    while todo:
        node = todo.popleft()
        if wanted(node):
            path = [node]
            while parents[path[-1]] is not None:
                path.append(parents[path[-1]])  # type: ignore[arg-type]
            return path[::-1]
        for nxt in sorted(graph.get(node, ())):
            if nxt not in parents:
                parents[nxt] = node
                todo.append(nxt)
    return None


def _db_layer(name: str) -> bool:
    return name in {"skillmeat_cache.models", "skillmeat_cache.uow", "sqlalchemy", "alembic"} or name.startswith(
        "skillmeat_cache.repositories"
    )


def test_the_scanner_reaches_neither_the_orm_nor_sqlalchemy_statically():
    graph = _graph()
    reached = _reachable(graph, "skillmeat_cache.scanner")
    assert "skillmeat_cache.scanner" in reached and "skillmeat_cache.reader" in reached
    chain = _path_to(graph, "skillmeat_cache.scanner", _db_layer)
    assert chain is None, "the scanner reaches the database layer: " + " -> ".join(chain or [])


def test_the_import_chain_check_finds_a_chain():
    graph = {"skillmeat_cache.scanner": {"a"}, "a": {"b", "c"}, "c": {"sqlalchemy"}}
    assert _path_to(graph, "skillmeat_cache.scanner", _db_layer) == ["skillmeat_cache.scanner", "a", "c", "sqlalchemy"]
    assert _path_to({"skillmeat_cache.scanner": {"a"}}, "skillmeat_cache.scanner", _db_layer) is None


def test_only_the_composition_root_imports_dependency_injector():
    graph = _graph()
    users = sorted(name for name, targets in graph.items() if "dependency_injector" in targets)
    assert users == ["skillmeat_cache.container"]


# --------------------------------------------------------------------------- sizes

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


# Over the limits today, each with who is shrinking it. An entry that is back under its
# limit fails the test below: delete it then, so that this list only ever shrinks.
OVERSIZED_ALLOWED: dict[str, str] = {
}


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's body, its docstring left out."""
    body = node.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]
    return (node.end_lineno or 0) - body[0].lineno + 1


def _functions(node: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function under ``node`` with its dotted name (``Class.method``, ``outer.inner``)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                yield name, child
            yield from _functions(child, f"{name}.")
        else:
            yield from _functions(child, prefix)


def _oversized(modules: dict[str, Path]) -> dict[str, str]:
    found = {}
    for name, path in modules.items():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE_LINES:
            found[name] = f"{text.count(chr(10))} lines"
        for qualname, node in _functions(ast.parse(text)):
            if _code_lines(node) > MAX_FUNCTION_LINES:
                found[f"{name}.{qualname}"] = f"{_code_lines(node)} lines of code"
    return found


def test_no_module_over_500_lines_and_no_function_over_60():
    found = _oversized(_modules())
    new = sorted(f"{name}: {size}" for name, size in found.items() if name not in OVERSIZED_ALLOWED)
    assert new == [], "over the size limits"
    shrunk = sorted(set(OVERSIZED_ALLOWED) - set(found))
    assert shrunk == [], "back under the limits: delete these from OVERSIZED_ALLOWED"


def test_the_size_check_counts_code_not_docstrings(tmp_path):
    code = "".join(f"        x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    docstring = '        """' + "\n" * 20 + '        """\n'
    (tmp_path / "fits.py").write_text(f"class C:\n    def f(self):\n{docstring}{code}")
    (tmp_path / "long.py").write_text(f"class C:\n    def g(self):\n{code}        y = 1\n")
    (tmp_path / "big.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    found = _oversized({p.stem: p for p in tmp_path.iterdir()})
    assert found == {"long.C.g": f"{MAX_FUNCTION_LINES + 1} lines of code", "big": f"{MAX_MODULE_LINES + 1} lines"}


def test_the_fake_stays_small():
    """The fake as a whole (every file of skillmeat_cache.testing) is read in one sitting."""
    folder = Path(__file__).resolve().parents[2] / "skillmeat_cache" / "testing"
    total = sum(path.read_text(encoding="utf-8").count("\n") for path in folder.glob("*.py"))
    assert 0 < total < MAX_MODULE_LINES, f"the fake is {total} lines"
