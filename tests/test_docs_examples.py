"""Every example in README.md and docs/*.md runs, so an example that goes stale fails here
(the conventions of the fences, and the runner: tests/docs_examples.py)."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import Future
from pathlib import Path

import pytest
from conftest import REPO
from docs_examples import (
    BLOCKS,
    CONFIG,
    PYTHON,
    RUNNABLE,
    SHELL,
    Block,
    ExampleFailed,
    FirstCommands,
    PageOutcomes,
    check_config_snippet,
    command_words,
    convention_problems,
    fenced_blocks,
    outcome,
    run_python_session,
    run_shell_block,
    shell_commands,
)

from jobs.datalake_job import SCRIPT


def test_every_fence_follows_the_convention() -> None:
    assert BLOCKS, "no fenced blocks found in README.md and docs/*.md"
    assert convention_problems(BLOCKS) == []


@pytest.mark.parametrize(
    "block", [b for b in RUNNABLE if b.language == CONFIG], ids=lambda b: b.where
)
def test_config_snippet_loads(block: Block) -> None:
    check_config_snippet(block)


@pytest.mark.parametrize(
    "block", [b for b in RUNNABLE if b.language == SHELL], ids=lambda b: b.where
)
def test_shell_example_runs(block: Block, page_runs: dict[str, Future[PageOutcomes]]) -> None:
    outcome(page_runs, block.page, block.where)


@pytest.mark.parametrize(
    "page", sorted({b.page for b in RUNNABLE if b.language == PYTHON}), ids=str
)
def test_python_session_runs_and_prints_what_the_page_shows(
    page: str, page_runs: dict[str, Future[PageOutcomes]]
) -> None:
    outcome(page_runs, page, page)


def test_the_readme_s_run_without_make_is_what_make_run_runs() -> None:
    # GIVEN the README's run of the job without make (not run by the docs test: make run is)
    (block,) = [b for b in BLOCKS if b.page == "README.md" and f"{SCRIPT} --config" in b.body]
    (command,) = shell_commands(block.body)
    # WHEN make prints the commands make run runs (make -n runs nothing; as a make of its own,
    # not one nested in make test's, which would print the directories it enters)
    alone = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    (printed,) = [
        line
        for line in subprocess.run(
            ["make", "--no-print-directory", "-n", "run"],
            cwd=REPO,
            env=alone,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.splitlines()
        if SCRIPT in line
    ]
    # THEN both are the same command (make also names the executors' Python)
    made = tuple(w for w in command_words(printed) if not w.startswith("PYSPARK_PYTHON="))
    assert command_words(command) == made


# --- the runner fails on broken examples (small, no Spark) ---

BROKEN_PAGE = """
# A page with one broken example of each kind

```bash
true
false
```

```python
if True:  # indented lines keep their indentation
    x = 41
```

```python
print(x + 1)
```

```text
43
```

```json
{"window_days": "fourteen"}
```

```
an unlabeled fence
```

```cron
# not run here:
0 2 * * * make submit
```
"""


def test_the_runner_fails_on_broken_examples(tmp_path: Path) -> None:
    # GIVEN a page whose every example is broken
    blocks = fenced_blocks(BROKEN_PAGE, "broken.md")
    assert [b.language for b in blocks] == ["bash", "python", "python", "text", "json", "", "cron"]
    shell, first, second, shown, config, unlabeled, marked = blocks
    (tmp_path / ".venv").symlink_to((REPO / ".venv").resolve())

    # THEN the failing command, the wrong output, the bad config and both fences are caught
    with pytest.raises(ExampleFailed, match=r"broken.md:4: exit code 1"):
        run_shell_block(shell, tmp_path, set())
    with pytest.raises(ExampleFailed, match=r"prints something else than broken.md:18 shows.*'43'"):
        run_python_session([first, second], {1: shown}, tmp_path)
    with pytest.raises(ExampleFailed, match=r"broken.md:22: the config snippet does not load"):
        check_config_snippet(config)
    assert convention_problems(blocks) == [
        (
            "broken.md:26: fence language '(none)': use bash, python, json, text or mermaid, "
            "or start the block with '# not run here: <reason>'"
        ),
        "broken.md:30: '# not run here:' needs the reason next to it",
    ]
    # AND a correct session, output and command pass
    fixed = Block("fixed.md", 1, "text", "42\n")
    assert run_python_session([first, second], {1: fixed}, tmp_path)[1].strip() == "42"
    assert (
        run_shell_block(Block("fixed.md", 1, "bash", "echo ok  # a comment\n"), tmp_path, set())
        == "ok\n"
    )
    assert unlabeled.not_run_reason is None
    assert marked.not_run_reason == ""


def test_a_command_runs_once_and_make_test_never(tmp_path: Path) -> None:
    # GIVEN blocks that repeat a command (other spacing and comment) and name make test
    ran: set[tuple[str, ...]] = set()
    first = Block("p.md", 1, "bash", "echo one >> log  # first\nmake test\n")
    again = Block("p.md", 9, "bash", "echo   one >> log    # again\necho two \\\n  >> log\n")
    # WHEN both run
    run_shell_block(first, tmp_path, ran)
    run_shell_block(again, tmp_path, ran)
    # THEN each distinct command ran once, and make test not at all
    assert (tmp_path / "log").read_text() == "one\ntwo\n"


def test_a_first_command_another_page_ran_gives_its_files_and_output(tmp_path: Path) -> None:
    # GIVEN two fresh copies of a checkout, and two pages opening with the same command (it
    # counts its runs outside the copies and writes a file that differs on each run)
    runs = tmp_path / "runs"
    command = f"echo run >> {runs} && mkdir -p output && date +%s%N > output/made && echo made"
    one, two, three = (tmp_path / name for name in ("one", "two", "three"))
    for copy in (one, two, three):
        copy.mkdir()
        (copy / "Makefile").write_text("unchanged\n")
    first = FirstCommands(tmp_path / "kept")
    # WHEN the first page runs it, then the second page, then a page opening otherwise
    printed = [
        first.run(Block("a.md", 1, "bash", f"{command}\necho later\n"), one, None),
        first.run(Block("b.md", 4, "bash", f"{command}  # the same words\n"), two, None),
        first.run(Block("c.md", 2, "bash", "echo other > other\n"), three, None),
    ]
    # THEN the command ran once (alone, not the block's next command): the second copy got
    # its output and the file it wrote; the other command ran on its own
    assert runs.read_text() == "run\n"
    assert printed == ["made\n", "made\n", ""]
    assert (two / "output" / "made").read_text() == (one / "output" / "made").read_text()
    assert sorted(p.name for p in two.rglob("*")) == ["Makefile", "made", "output"]
    assert (three / "other").read_text() == "other\n"
    assert not (three / "output").exists()


def test_a_python_failure_names_its_block(tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to((REPO / ".venv").resolve())
    blocks = [
        Block("p.md", 3, "python", "a = 1\n"),
        Block("p.md", 7, "python", "print(undefined_name)\n"),
    ]
    with pytest.raises(ExampleFailed, match=r"p.md:7: the session failed"):
        run_python_session(blocks, {}, tmp_path)
