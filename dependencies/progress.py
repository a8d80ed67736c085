"""Progress of long work for a person at a terminal: one status line on stderr, updated in
place and cleared when the work is done.

The line names the work, the current step and how long each has run, and, with a Spark
session, how many tasks of the running Spark stages are done (polled from
``SparkContext.statusTracker()`` by a daemon thread)::

    datalake_job 0:42 | detect 0:12 | Spark tasks 37/200 (stages 14, 15)

Nothing at all is written when stderr is not a terminal (cron, pipes, files): there the
log records tell the story. Lines written through :func:`echo` and the logger's console
target clear the status line first, so the two never mix.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Self, TextIO

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REFRESH_SECONDS = 0.5
# Carriage return, then erase to the end of the line (ANSI).
CLEAR_LINE = "\r\x1b[K"

# Held while anything writes to the terminal, so that a status line and a whole line never mix.
_terminal = threading.RLock()
_shown_on: list[TextIO] = []  # the stream a status line is showing on, if any


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (a person is watching)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


@contextmanager
def whole_lines(stream: TextIO) -> Iterator[None]:
    """Write whole lines to ``stream``: the status line, if shown there, is cleared first
    (the next refresh draws it again below them)."""
    with _terminal:
        if stream in _shown_on:
            stream.write(CLEAR_LINE)
            _shown_on.remove(stream)
        yield


def echo(text: str, stream: TextIO | None = None) -> None:
    """Print ``text`` (stdout by default) without mixing it into a status line."""
    target = stream or sys.stdout
    with whole_lines(sys.stderr), whole_lines(target):
        print(text, file=target, flush=True)


def clock(seconds: float) -> str:
    """``M:SS`` (or ``H:MM:SS``) for a duration."""
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}" if hours else f"{minute}:{second:02d}"


def spark_tasks(spark: SparkSession) -> str:
    """``Spark tasks done/total (stages ...)`` of the active stages; empty when none run."""
    tracker = spark.sparkContext.statusTracker()
    stages = [
        info for info in map(tracker.getStageInfo, sorted(tracker.getActiveStageIds())) if info
    ]
    if not stages:
        return ""
    done = sum(info.numCompletedTasks for info in stages)
    total = sum(info.numTasks for info in stages)
    ids = ", ".join(str(info.stageId) for info in stages)
    return f"Spark tasks {done}/{total} ({'stage' if len(stages) == 1 else 'stages'} {ids})"


class Progress:
    """A status line for ``label``'s work while the ``with`` block runs; see the module.

    Call :meth:`step` as the work moves on. Without a terminal on ``stream`` it does nothing."""

    def __init__(
        self,
        label: str,
        spark: SparkSession | None = None,
        stream: TextIO | None = None,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self.label = label
        self.spark = spark
        self.stream = stream or sys.stderr
        self.refresh_seconds = refresh_seconds
        self.enabled = is_terminal(self.stream)
        self.current_step = "starting"
        self.started = self.step_started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self, name: str) -> None:
        """The work is now at step ``name``."""
        self.current_step, self.step_started = name, time.monotonic()

    def line(self) -> str:
        """The status line as it reads now."""
        now = time.monotonic()
        parts = [
            f"{self.label} {clock(now - self.started)}",
            f"{self.current_step} {clock(now - self.step_started)}",
        ]
        if self.spark is not None:
            try:
                tasks = spark_tasks(self.spark)
            except Exception:
                tasks = ""
            if tasks:
                parts.append(tasks)
        return " | ".join(parts)

    def _draw(self) -> None:
        width = shutil.get_terminal_size().columns - 1  # a wrapped line could not be redrawn
        with _terminal:
            # The cursor goes back to the line's start: a line another process writes (Spark's
            # own log4j lines) then covers the status instead of running on after it.
            self.stream.write(f"\r{self.line()[:width]}\x1b[K\r")
            self.stream.flush()
            if self.stream not in _shown_on:
                _shown_on.append(self.stream)

    def _refresh(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            self._draw()

    def __enter__(self) -> Self:
        if self.enabled:
            self._draw()
            self._thread = threading.Thread(
                target=self._refresh, name=f"progress-{self.label}", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            with whole_lines(self.stream):
                self.stream.flush()
