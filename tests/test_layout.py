"""The README's layout table names every module of the job and its helpers (and the templates
beside them), and only paths that exist."""

from __future__ import annotations

import re

from conftest import REPO

LAYOUT_HEADING = "## Layout"
CODE_FOLDERS = ("jobs", "dependencies")
CODE_FILES = ("*.py", "*.j2")


def layout_paths() -> set[str]:
    """The paths in backticks in the first column of the README's layout table."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index(LAYOUT_HEADING) :].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {path for row in rows for path in re.findall(r"`([^`]+)`", row.split(" | ")[0])}


def test_the_layout_names_every_module() -> None:
    # GIVEN every Python module of the job's folders (a package's __init__ aside) and every
    # template beside them
    modules = {
        path.relative_to(REPO).as_posix()
        for folder in CODE_FOLDERS
        for pattern in CODE_FILES
        for path in (REPO / folder).rglob(pattern)
        if path.name != "__init__.py"
    }
    # THEN the README's layout table names each of them
    assert modules - layout_paths() == set()


def test_the_layout_names_only_what_exists() -> None:
    missing = {path for path in layout_paths() if not (REPO / path.rstrip("/")).exists()}
    assert missing == set()
