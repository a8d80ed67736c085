"""``dependencies/`` holds helpers any job could use: none of its modules may import ``jobs``."""

from __future__ import annotations

import ast

from conftest import REPO


def imported_modules(source: str) -> set[str]:
    """Every module named by an import statement in ``source`` (top-level names of relative
    imports are left as written)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_imported_modules_sees_every_form_of_import():
    # GIVEN imports at the top level, inside a function and under a condition
    source = (
        "import jobs.rules\nif x:\n    from jobs import usage\ndef f():\n    import os.path as p\n"
    )
    # WHEN they are collected / THEN each one is named
    assert imported_modules(source) == {"jobs.rules", "jobs", "os.path"}


def test_no_module_under_dependencies_imports_jobs():
    # GIVEN every module under dependencies/
    modules = sorted((REPO / "dependencies").rglob("*.py"))
    assert modules
    # WHEN their imports are parsed
    offenders = {
        str(path.relative_to(REPO)): sorted(
            name
            for name in imported_modules(path.read_text(encoding="utf-8"))
            if name == "jobs" or name.startswith("jobs.")
        )
        for path in modules
    }
    # THEN none imports jobs/
    assert {path: names for path, names in offenders.items() if names} == {}
