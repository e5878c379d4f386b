"""The shape of the code: imports point one way (DESIGN §1) and `kfcli/cli` has no import
cycle (a command module never imports the module that imports it)."""

from __future__ import annotations

import ast
from pathlib import Path

import kfcli

ROOT = Path(kfcli.__file__).parent


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported when `path` is imported (not those imported inside functions)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("kfcli")}


def _graph(package: str) -> dict[str, set[str]]:
    files = {_module(p): p for p in (ROOT.parent / package.replace(".", "/")).rglob("*.py")}
    return {name: (_top_level_imports(path) & files.keys()) - {name}
            for name, path in files.items()}


def test_cli_has_no_import_cycle() -> None:
    graph = _graph("kfcli.cli")
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in trail:
            cycle = trail[trail.index(name):] + (name,)
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for target in sorted(graph[name]):
            # A package's own __init__ importing its submodules is how it registers them.
            if not name.startswith(target + "."):
                visit(target, trail + (name,))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())


def test_core_never_imports_the_cli_or_rich() -> None:
    for path in (ROOT / "core").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(("kfcli.cli", "typer", "rich")), (path, name)


def test_only_the_renderer_writes_stdout() -> None:
    """Commands hand what they show to kfcli.render (STYLE #4): no print(), no rich Console
    of their own."""
    for path in (ROOT / "cli").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                assert name not in ("print", "Console", "rich_console"), (path, node.lineno)


def test_command_bodies_are_short() -> None:
    """A command is an adapter: parse -> core -> render, at most 40 lines of body (its
    docstring and signature aside); the work is in kfcli.core or the group's helpers."""
    long = []
    for path in (ROOT / "cli").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef) or not any(
                    isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "command"
                    for d in node.decorator_list):
                continue
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:] or body
            lines = (node.end_lineno or 0) - body[0].lineno + 1
            if lines > 40:
                long.append(f"{path.relative_to(ROOT)}:{node.name} ({lines} lines)")
    assert not long, long
