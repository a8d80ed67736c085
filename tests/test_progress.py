"""Progress at a terminal: one status line with the step and the Spark tasks of real Spark
stages, updated in place and cleared; nothing at all when the output is not a terminal."""

from __future__ import annotations

import io
import logging
import time

from pyspark.sql import SparkSession

from dependencies.logging import ConsoleHandler, TextFormatter
from dependencies.progress import CLEAR_LINE, Progress, clock, echo

STEP_SECONDS = 0.4


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal, and keeps what was written to it."""

    def isatty(self) -> bool:
        return True


def slow_spark_work(spark: SparkSession) -> list[int]:
    """Real Spark tasks, four of them, each taking a little while."""
    return (
        spark.sparkContext.parallelize(range(4), 4)
        .map(lambda x: time.sleep(STEP_SECONDS) or x)
        .collect()
    )


def test_at_a_terminal_the_line_shows_the_step_and_the_spark_tasks_updated_in_place(spark):
    # GIVEN a terminal
    terminal = FakeTerminal()

    # WHEN a step runs real Spark tasks inside a progress block
    with Progress("work", spark, terminal, refresh_seconds=0.05) as progress:
        progress.step("counting")
        assert slow_spark_work(spark) == [0, 1, 2, 3]

    # THEN the line was redrawn in place (carriage returns, no new lines) with the label,
    # the step and the task count of the stage, and cleared at the end
    written = terminal.getvalue()
    assert "\n" not in written
    updates = [
        update.removesuffix("\x1b[K") for update in written.split("\r") if update.strip("\x1b[K")
    ]
    assert len(updates) >= 3
    assert all(update.startswith("work 0:") for update in updates)
    assert any(
        " | counting 0:0" in update and "| Spark tasks " in update and "/4 (stage " in update
        for update in updates
    )
    assert written.endswith(CLEAR_LINE)


def test_without_a_terminal_nothing_is_written(spark):
    # GIVEN a pipe or a file, not a terminal
    pipe = io.StringIO()

    # WHEN the same work runs inside a progress block
    with Progress("work", spark, pipe, refresh_seconds=0.05) as progress:
        progress.step("counting")
        slow_spark_work(spark)

    # THEN not a byte of progress was written
    assert pipe.getvalue() == ""


def test_log_lines_and_echoed_lines_clear_the_status_line_first():
    # GIVEN a status line on a terminal, and a console log handler on the same terminal
    terminal = FakeTerminal()
    logger = logging.getLogger("test_progress")
    handler = ConsoleHandler(terminal)
    handler.setFormatter(TextFormatter())
    logger.addHandler(handler)
    try:
        # WHEN a record is logged and a line echoed while the status line shows
        with Progress("work", stream=terminal, refresh_seconds=60):
            logger.warning("a record")
            echo("an echoed line", terminal)
    finally:
        logger.removeHandler(handler)

    # THEN each begins on a cleared line, never after the status text
    written = terminal.getvalue()
    assert written.startswith("\rwork 0:00 | starting 0:00\x1b[K\r" + CLEAR_LINE)
    assert "a record\nan echoed line\n" in written
    assert "0:00a record" not in written


def test_clock_reads_minutes_and_hours():
    assert [clock(5), clock(65.9), clock(3 * 3600 + 62)] == ["0:05", "1:05", "3:01:02"]
