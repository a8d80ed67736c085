"""One run of the job: its identity, its stage timings, and how it finishes."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from dependencies.logging import LOGGER_NAME, flush_logger, redact
from dependencies.metrics import PushFailed, push_run_metrics, run_metrics


@dataclass
class StageTimer:
    """Wall-clock seconds and Spark jobs started per stage of the run; ``on_begin`` hears
    each stage's name as it begins (the progress line), ``count_jobs`` tells how many Spark
    jobs have started so far."""

    seconds: dict[str, float] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)
    on_begin: Callable[[str], None] = lambda stage: None
    count_jobs: Callable[[], int] = lambda: 0
    jobs_before_run: int = 0

    def count_jobs_with(self, count_jobs: Callable[[], int]) -> None:
        """Count Spark jobs with ``count_jobs`` (jobs started so far), from now on."""
        self.count_jobs, self.jobs_before_run = count_jobs, count_jobs()

    def jobs_of_run(self) -> int:
        """Spark jobs the run has started so far."""
        return self.count_jobs() - self.jobs_before_run

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Announce stage ``name``, and record (and log) its seconds when it completes."""
        self.on_begin(name)
        started, jobs_before = time.monotonic(), self.count_jobs()
        yield
        self.seconds[name] = round(time.monotonic() - started, 3)
        self.jobs[name] = self.count_jobs() - jobs_before
        logging.getLogger(LOGGER_NAME).info(
            "stage %s done in %.3f s (%d Spark jobs)",
            name,
            self.seconds[name],
            self.jobs[name],
            extra={"stage": name, "seconds": self.seconds[name], "spark_jobs": self.jobs[name]},
        )


@dataclass
class Run:
    """One run of the job: its date, config path, start instant, id, command line, whether
    it computes the readings' ledger afresh, and its stage timings."""

    run_date: date
    config_path: str | None
    started_at: datetime
    run_id: str = ""
    command: str = ""
    full_refresh: bool = False
    timer: StageTimer = field(default_factory=StageTimer)

    def __post_init__(self) -> None:
        self.run_id = self.run_id or f"{self.run_date.isoformat()}-{uuid.uuid4().hex[:12]}"


def run_start_instant() -> datetime:
    """The moment the run starts (UTC, whole seconds); a reading stamped later is a meter
    clock error (``future_timestamp``)."""
    return datetime.now(UTC).replace(microsecond=0)


def finish(
    log: logging.Logger,
    config: dict[str, Any],
    exit_code: int,
    run: Run,
    report: dict[str, Any] | None = None,
) -> int:
    """Log the outcome, push the run's metrics (a failed push never fails the run), deliver
    the logs; return ``exit_code``."""
    log.info(
        "run finished with exit code %d",
        exit_code,
        extra={"exit_code": exit_code, "spark_jobs": run.timer.jobs_of_run()},
    )
    metrics = run_metrics(
        exit_code, run.started_at.timestamp(), time.time(), run.timer.seconds, report
    )
    try:
        if push_run_metrics(metrics, config["metrics"]):
            log.info("metrics pushed to %s", redact(config["metrics"]["pushgateway_url"]))
    except PushFailed as error:  # unreachable, refused, unauthorized or malformed URL
        log.warning("metrics not pushed: %s", error)
    flush_logger(log)
    return exit_code
