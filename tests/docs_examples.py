"""The runner of the examples in README.md and docs/*.md (tests/test_docs_examples.py).

Each page runs in a scratch copy of the checkout of its own, whose ``.venv`` is the real one
(nothing is written into the checkout, and no page depends on another having run); one page
at a time, in the background from the suite's first test on (``page_runs`` in
tests/conftest.py), so that they run while the other tests do.

The fences of the docs follow one convention, and this runner knows nothing else about them:

- ```` ```bash ````: each command runs (a line ending in ``\\`` continues it), in order. A
  command an earlier block of the page already ran (the same words, comments aside) is not run
  again. ``make test`` is not run (it is this suite). ``spark://HOST:7077`` stands for a
  cluster: it is replaced by the master URL of a standalone cluster the test starts
  (``spark_cluster`` in tests/conftest.py, shared with tests/test_cluster.py), only when a block
  needs one. A page whose first command is another page's first command (``make run`` opens
  two pages) gets what that one printed and the files it wrote, instead of running it again:
  the same command on the same fresh copy of the checkout.
- ```` ```python ````: the python blocks of one page are one session (an IPython session in
  the docs), run in order, after the page's bash blocks, by one ``DEBUG=1 .venv/bin/python``.
  A ```` ```text ```` block that is the next fence after a python block is that block's output:
  each of its lines must be printed, in that order.
- ```` ```json ````: a config snippet: it must load as a config, merged over the bundled
  defaults by dependencies/config.py (unknown keys and wrong types fail).
- ```` ```text ````: shown output; not run.
- ```` ```mermaid ````: a diagram (code hosts draw it); not run.
- A block whose first line is ``# not run here: <reason>`` is not run; the reason is required.
- Any other fence (no language, another language) fails: label it, or mark it not run here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import Executor, Future, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REPO, cluster_environment

from dependencies.config import ConfigError, bundled_defaults, merge_config

PAGES = ("README.md", "docs/*.md")
SHELL, PYTHON, CONFIG, OUTPUT, DIAGRAM = "bash", "python", "json", "text", "mermaid"
NOT_RUN = re.compile(r"^#\s*not run here:\s*(?P<reason>.*)$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,})(?P<language>[^`\s]*)\s*$")
MASTER_PLACEHOLDER = "spark://HOST:7077"
BLOCK_SECONDS = 1200
SESSION_SECONDS = 900
BLOCK_MARK = "<<< docs example block {} >>>"


class ExampleFailed(AssertionError):
    """A docs example that does not run, or does not print what the page shows."""


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: where it starts, its language, its text."""

    page: str
    line: int
    language: str
    body: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def not_run_reason(self) -> str | None:
        """The reason after ``# not run here:`` on the first line; None if the block runs."""
        first = self.body.strip().splitlines()[0] if self.body.strip() else ""
        marked = NOT_RUN.match(first.strip())
        return marked["reason"].strip() if marked else None


def fenced_blocks(text: str, page: str) -> list[Block]:
    """The fenced blocks of a Markdown page, in order (indented fences included)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, ticks = len(opening["indent"]), opening["ticks"]
        body: list[str] = []
        closing = index + 1
        while closing < len(lines) and lines[closing].strip() != ticks:
            line = lines[closing]
            body.append(line[indent:] if not line[:indent].strip() else line.lstrip())
            closing += 1
        if closing == len(lines):
            raise ExampleFailed(f"{page}:{index + 1}: fence never closed")
        blocks.append(Block(page, index + 1, opening["language"], "\n".join(body) + "\n"))
        index = closing + 1
    return blocks


def doc_pages(root: Path = REPO) -> list[Path]:
    """README.md and docs/*.md, whichever exist."""
    return sorted({path for pattern in PAGES for path in root.glob(pattern)})


def all_blocks(root: Path = REPO) -> list[Block]:
    return [
        block
        for page in doc_pages(root)
        for block in fenced_blocks(page.read_text(encoding="utf-8"), str(page.relative_to(root)))
    ]


def convention_problems(blocks: list[Block]) -> list[str]:
    """Fences that break the convention: no or an unknown language, a mark without a reason."""
    problems = []
    for block in blocks:
        reason = block.not_run_reason
        if reason == "":
            problems.append(f"{block.where}: '# not run here:' needs the reason next to it")
        elif block.language not in (SHELL, PYTHON, CONFIG, OUTPUT, DIAGRAM) and reason is None:
            problems.append(
                f"{block.where}: fence language {block.language or '(none)'!r}: "
                "use bash, python, json, text or mermaid, "
                "or start the block with '# not run here: <reason>'"
            )
    return problems


def check_config_snippet(block: Block) -> None:
    """A json block must be a config section set that merges over the bundled defaults."""
    try:
        merge_config(bundled_defaults(), json.loads(block.body), block.where)
    except (ValueError, ConfigError) as error:
        raise ExampleFailed(f"{block.where}: the config snippet does not load: {error}") from None


def shell_commands(body: str) -> list[str]:
    """The commands of a shell block: continued lines joined, blank and comment lines dropped."""
    commands, current = [], ""
    for line in body.splitlines():
        current += line
        if line.rstrip().endswith("\\"):
            current += "\n"
            continue
        if current.strip() and not current.lstrip().startswith("#"):
            commands.append(current)
        current = ""
    if current.strip():
        commands.append(current)
    return commands


def command_words(command: str) -> tuple[str, ...]:
    """The words of a command, comments aside (the key under which it runs once)."""
    try:
        return tuple(shlex.split(command, comments=True))
    except ValueError:
        return (" ".join(command.split()),)


def runs_this_suite(words: tuple[str, ...]) -> bool:
    """``make test`` (with or without variables) is this suite: running it would recurse."""
    return words[:1] == ("make",) and "test" in words[1:]


def run_shell_block(
    block: Block,
    workdir: Path,
    ran: set[tuple[str, ...]],
    master_url: str | None = None,
    env: dict | None = None,
) -> str:
    """Run the block's commands not run before, in ``workdir``; return their output. Raises
    :class:`ExampleFailed` with the failing command's output when one fails."""
    script = ["set -euo pipefail"]
    for command in shell_commands(block.body):
        words = command_words(command)
        if words in ran or runs_this_suite(words):
            continue
        ran.add(words)
        if MASTER_PLACEHOLDER in command:
            if master_url is None:
                raise ExampleFailed(f"{block.where}: {MASTER_PLACEHOLDER} needs the test cluster")
            command = command.replace(MASTER_PLACEHOLDER, master_url)
        script += [f"echo {shlex.quote('+ ' + command)} >&2", command]
    if len(script) == 1:
        return ""
    try:
        finished = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=workdir,
            env=env or os.environ.copy(),
            capture_output=True,
            text=True,
            timeout=BLOCK_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ExampleFailed(f"{block.where}: did not finish within {BLOCK_SECONDS} s") from None
    if finished.returncode != 0:
        raise ExampleFailed(
            f"{block.where}: exit code {finished.returncode}\n"
            f"--- stdout\n{finished.stdout[-3000:]}\n"
            f"--- stderr\n{finished.stderr[-6000:]}"
        )
    return finished.stdout


def session_script(blocks: list[Block]) -> str:
    """One Python program running ``blocks`` in one namespace, each announced by a mark line."""
    sources = [(block.body, f"<{block.where}>") for block in blocks]
    return (
        "import json, sys\n"
        f"sources = json.loads({json.dumps(json.dumps(sources))})\n"
        "namespace = {'__name__': '__main__'}\n"
        "for number, (source, name) in enumerate(sources):\n"
        f"    print({BLOCK_MARK!r}.format(number), flush=True)\n"
        "    exec(compile(source, name, 'exec'), namespace)\n"
        "    sys.stdout.flush()\n"
    )


def run_python_session(blocks: list[Block], outputs: dict[int, Block], workdir: Path) -> list[str]:
    """Run a page's python blocks as one ``DEBUG=1`` session in ``workdir``; check that the
    output shown after each (``outputs``: block index -> text block) is printed; return each
    block's output."""
    environment = {**os.environ, "DEBUG": "1"}
    environment.pop("PYTHONPATH", None)
    try:
        finished = subprocess.run(
            [str(workdir / ".venv" / "bin" / "python"), "-"],
            input=session_script(blocks),
            cwd=workdir,
            env=environment,
            capture_output=True,
            text=True,
            timeout=SESSION_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ExampleFailed(
            f"{blocks[0].page}: the session did not finish within {SESSION_SECONDS} s"
        ) from None
    printed = re.split(
        r"^" + re.escape(BLOCK_MARK).replace(r"\{\}", r"\d+") + r"\n",
        finished.stdout,
        flags=re.MULTILINE,
    )[1:]
    if finished.returncode != 0:
        failed = blocks[len(printed) - 1].where if printed else blocks[0].page
        raise ExampleFailed(f"{failed}: the session failed\n--- stderr\n{finished.stderr[-6000:]}")
    for index, shown in outputs.items():
        missing = first_missing_line(shown.body, printed[index])
        if missing is not None:
            raise ExampleFailed(
                f"{blocks[index].where}: prints something else than {shown.where} shows; "
                f"first line not printed (in order): {missing!r}\n"
                f"--- printed\n{printed[index][-6000:]}"
            )
    return printed


def first_missing_line(shown: str, printed: str) -> str | None:
    """The first non-blank line of ``shown`` not printed (after the lines before it); None if
    every line was."""
    lines = iter(line.rstrip() for line in printed.splitlines())
    for expected in (line.rstrip() for line in shown.splitlines()):
        if expected.strip() and not any(line == expected for line in lines):
            return expected
    return None


def page_session(blocks: list[Block]) -> tuple[list[Block], dict[int, Block]]:
    """A page's runnable python blocks, and the text block shown right after each (by index)."""
    session: list[Block] = []
    outputs: dict[int, Block] = {}
    for position, block in enumerate(blocks):
        if block.language != PYTHON or block.not_run_reason is not None:
            continue
        session.append(block)
        following = blocks[position + 1] if position + 1 < len(blocks) else None
        if following is not None and following.language == OUTPUT:
            outputs[len(session) - 1] = following
    return session, outputs


def scratch_copy(source: Path, target: Path) -> Path:
    """A copy of the checkout's files (tracked and new, not ignored) with the real ``.venv``
    linked in; its Pipfile and lock no newer than the virtualenv's install stamp, so ``make``
    never re-installs."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=source,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        if (source / name).is_file() and not (source / name).is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)
    venv = (source / ".venv").resolve()
    (target / ".venv").symlink_to(venv)
    stamp = venv / ".installed"
    if stamp.exists():
        for name in ("Pipfile", "Pipfile.lock"):
            if (target / name).exists():
                os.utime(target / name, (stamp.stat().st_mtime - 1, stamp.stat().st_mtime - 1))
    return target


CACHES = ("__pycache__", ".pytest_cache", ".ruff_cache")


def checkout_state() -> list[str]:
    """What git sees in the checkout, ignored files included (``output/``, ``packages.zip``,
    ``logs/``), Python's and the tools' caches aside."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in status.splitlines() if not any(cache in line for cache in CACHES)]


# --- the docs of this checkout ---

BLOCKS = all_blocks()
RUNNABLE = [block for block in BLOCKS if block.not_run_reason is None]


PageOutcomes = dict[str, str | list[str] | ExampleFailed]
Snapshot = dict[str, tuple[int, int]]


def files_of(workdir: Path) -> Snapshot:
    """Every file under ``workdir`` (the linked ``.venv`` aside): its size and modification."""
    found = {}
    for directory, subdirectories, names in os.walk(workdir):
        if directory == str(workdir):
            subdirectories[:] = [d for d in subdirectories if d != ".venv"]
        for name in names:
            path = Path(directory, name)
            status = path.lstat()
            found[str(path.relative_to(workdir))] = (status.st_size, status.st_mtime_ns)
    return found


@dataclass
class FirstCommands:
    """The first command of pages, run once: by its words, what it printed and the files it
    wrote in its page's fresh copy of the checkout (kept under ``directory``)."""

    directory: Path
    printed: dict[tuple[str, ...], str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def kept(self, words: tuple[str, ...]) -> Path:
        """Where the files the command wrote are kept."""
        return self.directory / "_".join(re.sub(r"\W", "", word) for word in words)[:100]

    def run(self, block: Block, workdir: Path, master_url: str | None) -> str:
        """Run ``block``'s first command in the fresh copy ``workdir``, or give it the files
        and output of the same command run first on another page; return the output."""
        command = shell_commands(block.body)[0]
        words = command_words(command)
        with self.lock:
            if words not in self.printed:
                before = files_of(workdir)
                one = Block(block.page, block.line, block.language, command + "\n")
                self.printed[words] = run_shell_block(
                    one, workdir, set(), master_url, cluster_environment()
                )
                after = files_of(workdir)
                for name in sorted(n for n in after if after[n] != before.get(n)):
                    (self.kept(words) / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(workdir / name, self.kept(words) / name)
            elif self.kept(words).exists():
                shutil.copytree(self.kept(words), workdir, symlinks=True, dirs_exist_ok=True)
            return self.printed[words]


def run_page(
    page: str, workdir: Path, master_url: str | None, first: FirstCommands | None = None
) -> PageOutcomes:
    """Run a page's bash blocks in order, then its python session, in ``workdir``; each
    block's output or failure by ``where``, the session's by page. ``first``: the first
    commands of pages run so far, shared with this page."""
    blocks = [block for block in BLOCKS if block.page == page]
    outcomes: PageOutcomes = {}
    ran: set[tuple[str, ...]] = set()
    for block in blocks:
        if block.language == SHELL and block.not_run_reason is None:
            try:
                printed = ""
                if not ran and first is not None and shell_commands(block.body):
                    printed = first.run(block, workdir, master_url)
                    ran.add(command_words(shell_commands(block.body)[0]))
                outcomes[block.where] = printed + run_shell_block(
                    block, workdir, ran, master_url, cluster_environment()
                )
            except ExampleFailed as failed:
                outcomes[block.where] = failed
    session, outputs = page_session(blocks)
    if session:
        try:
            outcomes[page] = run_python_session(session, outputs, workdir)
        except ExampleFailed as failed:
            outcomes[page] = failed
    return outcomes


def steps_of_page(page: str) -> int:
    """How many commands and python blocks a page runs."""
    return sum(
        len(shell_commands(block.body)) if block.language == SHELL else 1
        for block in RUNNABLE
        if block.page == page and block.language in (SHELL, PYTHON)
    )


def needs_cluster() -> bool:
    """Whether a page's shell example names ``spark://HOST:7077``."""
    return any(MASTER_PLACEHOLDER in block.body for block in RUNNABLE if block.language == SHELL)


@contextmanager
def running_pages(
    master_url: str | None, tmp_path_factory: pytest.TempPathFactory, pool: Executor
) -> Iterator[dict[str, Future[PageOutcomes]]]:
    """Start every page with examples to run, each in a scratch copy of its own, on ``pool``
    (the suite's background thread: one page at a time, beside the rest of the suite); yield
    a page's outcomes (a future) by page. On exit, wait for them all; the checkout must be as
    before."""
    before = checkout_state()
    # the pages with the most to run first, so that the last to finish is a short one
    pages = sorted(
        {block.page for block in RUNNABLE if block.language in (SHELL, PYTHON)},
        key=steps_of_page,
        reverse=True,
    )
    first = FirstCommands(tmp_path_factory.mktemp("docs_first_commands"))
    runs = {
        page: pool.submit(
            run_page,
            page,
            scratch_copy(REPO, tmp_path_factory.mktemp("docs_checkout")),
            master_url,
            first,
        )
        for page in pages
    }
    yield runs
    wait(runs.values())
    assert checkout_state() == before, "a docs example wrote into the checkout"


def outcome(page_runs: dict[str, Future[PageOutcomes]], page: str, key: str) -> str | list[str]:
    """What the example ``key`` of ``page`` printed; raises its failure."""
    result = page_runs[page].result()[key]
    if isinstance(result, ExampleFailed):
        raise result
    return result
