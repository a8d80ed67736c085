"""The detection window W and the baseline window B of one run, in UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any


@dataclass(frozen=True)
class RunWindow:
    """W: the ``window_days`` UTC days ending with ``run_date``; B: the ``baseline_days``
    days just before W; readings from ``lookback_days`` before B may close B's first interval."""

    run_date: date
    window_days: int
    baseline_days: int
    lookback_days: int

    @classmethod
    def from_config(cls, run_date: date, config: dict[str, Any]) -> RunWindow:
        """The window of ``run_date`` with the sizes set in ``config``."""
        return cls(
            run_date,
            config["window_days"],
            config["baseline_days"],
            config["usage"]["lookback_days"],
        )

    @property
    def window_start_date(self) -> date:
        """First day of W."""
        return self.run_date - timedelta(days=self.window_days - 1)

    @property
    def baseline_start_date(self) -> date:
        """First day of B."""
        return self.window_start_date - timedelta(days=self.baseline_days)

    @property
    def read_start_date(self) -> date:
        """First day whose readings may be needed (the reading just before B)."""
        return self.baseline_start_date - timedelta(days=self.lookback_days)

    @property
    def read_end_date(self) -> date:
        """Last day whose readings may be needed: the day after ``run_date`` (its first
        reading may close W's last interval)."""
        return self.window_end.date()

    @property
    def window_start(self) -> datetime:
        """W's first instant."""
        return midnight(self.window_start_date)

    @property
    def window_end(self) -> datetime:
        """The instant just after W (exclusive end)."""
        return midnight(self.run_date + timedelta(days=1))

    @property
    def baseline_start(self) -> datetime:
        """B's first instant."""
        return midnight(self.baseline_start_date)

    @property
    def read_start(self) -> datetime:
        """The earliest reading instant the run reads."""
        return midnight(self.read_start_date)


def midnight(day: date) -> datetime:
    """The first instant of a UTC day."""
    return datetime.combine(day, time.min, tzinfo=UTC)
