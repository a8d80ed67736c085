"""The job's code stays readable: no function of the job (jobs/, its tools aside) or of
dependencies/ runs over MAX_FUNCTION_LINES lines."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

MAX_FUNCTION_LINES = 60
CODE_FOLDERS = ("jobs", "dependencies")
# The tools beside the job (generators, benchmarks) are scripts, not the job's story.
NOT_CHECKED_FOLDERS = ("jobs/tools",)


def long_functions(source: str, max_lines: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """(name, lines) of every function or method in ``source``, nested ones included, whose
    definition (signature, docstring and body; decorators aside) spans more than
    ``max_lines`` lines."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = node.end_lineno - node.lineno + 1
            if lines > max_lines:
                found.append((node.name, lines))
    return found


def checked_modules() -> list[Path]:
    """The Python files whose functions are held to the limit."""
    return sorted(
        path
        for folder in CODE_FOLDERS
        for path in (REPO / folder).rglob("*.py")
        if not path.relative_to(REPO).as_posix().startswith(NOT_CHECKED_FOLDERS)
    )


def test_a_long_function_is_found() -> None:
    # GIVEN a function of 62 lines and a method of 3, one nested in a class
    body = "".join(f"    x{n} = {n}\n" for n in range(61))
    source = f"def long():\n{body}\nclass C:\n    def short(self):\n        return 1\n"
    # WHEN the long functions are listed
    found = long_functions(source)
    # THEN only the long one is, with its length
    assert found == [("long", 62)]


def test_no_function_of_the_job_is_over_the_limit() -> None:
    # GIVEN every module of the job and of dependencies/ (the tools and the page aside)
    modules = checked_modules()
    assert REPO / "jobs" / "datalake_job.py" in modules
    assert REPO / "dependencies" / "publish.py" in modules
    # WHEN their functions are measured
    too_long = [
        f"{path.relative_to(REPO)}: {name} ({lines} lines)"
        for path in modules
        for name, lines in long_functions(path.read_text(encoding="utf-8"))
    ]
    # THEN none is longer than MAX_FUNCTION_LINES
    assert too_long == []
