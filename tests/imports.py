"""The project modules a stage script imports, found by reading the code (imports inside functions included)."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT


def module_file(name: str) -> Path | None:
    path = ROOT / (name.replace(".", "/") + ".py")
    if path.is_file():
        return path
    package = ROOT / name.replace(".", "/") / "__init__.py"
    return package if package.is_file() else None


def direct_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] == "stages" and module_file(name)}


def project_imports(script: str) -> set[str]:
    """Repository-relative paths of `script` and every project module it imports, transitively."""
    seen, todo = set(), [script]
    while todo:
        path = ROOT / todo.pop()
        rel = path.relative_to(ROOT).as_posix()
        if rel in seen:
            continue
        seen.add(rel)
        for name in direct_imports(path):
            todo.append(module_file(name).relative_to(ROOT).as_posix())
    # The package and its entry point (`python -m stages <name>`, what each stage's cmd runs;
    # a stage module reaches it only when run the old way) are not a stage's dependencies.
    return {p for p in seen if not p.endswith("__init__.py") and p != "stages/__main__.py"}
