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
    """Wall-clock seconds per stage of the run; ``on_begin`` hears each stage's name as it
    begins (the progress line)."""

    seconds: dict[str, float] = field(default_factory=dict)
    on_begin: Callable[[str], None] = lambda stage: None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Announce stage ``name``, and record (and log) its seconds when it completes."""
        self.on_begin(name)
        started = time.monotonic()
        yield
        self.seconds[name] = round(time.monotonic() - started, 3)
        logging.getLogger(LOGGER_NAME).info(
            "stage %s done in %.3f s",
            name,
            self.seconds[name],
            extra={"stage": name, "seconds": self.seconds[name]},
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
    log.info("run finished with exit code %d", exit_code, extra={"exit_code": exit_code})
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
