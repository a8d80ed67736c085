"""History of alerts across run dates: new or continuing, since when, how many runs, cleared.

The previous run date of D is the latest earlier run date, at most ``history_days`` before D,
whose report is published (a complete run). Only that date's published alerts are read
(small), never D's own outputs: a re-run of D gives the same history, and a backfill in date
order builds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dependencies.publish import latest_complete_run_date, read_published
from dependencies.transforms import Transform

NEW = "new"
CONTINUING = "continuing"
HISTORY_COLUMNS = ("device_id", "first_alerted_on", "runs_alerted")


@dataclass(frozen=True)
class PreviousRun:
    """The previous complete run date and its alerts' history (``HISTORY_COLUMNS``); both
    None when there is none within the look-back."""

    run_date: date | None
    alerts: DataFrame | None


def previous_run(
    spark: SparkSession, output_path: str, run_date: date, history_days: int
) -> PreviousRun:
    """The previous complete run date of ``run_date`` in ``output_path`` and its alerts."""
    previous = latest_complete_run_date(
        spark, output_path, before=run_date, earliest=run_date - timedelta(days=history_days)
    )
    if previous is None:
        return PreviousRun(None, None)
    published = read_published(spark, output_path, "alerts", previous)
    return PreviousRun(previous, history_of(published, previous))


def history_of(published: DataFrame, run_date: date) -> DataFrame:
    """The history columns of ``run_date``'s published alerts; alerts published before
    history existed count as first alerted on ``run_date``, once."""
    columns = set(published.columns)
    return published.select(
        "device_id",
        F.col("first_alerted_on")
        if "first_alerted_on" in columns
        else F.lit(run_date).alias("first_alerted_on"),
        F.col("runs_alerted") if "runs_alerted" in columns else F.lit(1).alias("runs_alerted"),
    )


def with_history(previous: PreviousRun, run_date: date) -> Transform:
    """Alerts of ``run_date`` -> ``status``, ``first_alerted_on``, ``runs_alerted``: carried on
    from the previous run for a device alerted there (``continuing``), else ``new``."""

    def transform(alerts: DataFrame) -> DataFrame:
        earlier = previous.alerts
        if earlier is None:
            earlier = alerts.sparkSession.createDataFrame(
                [], "device_id string, first_alerted_on date, runs_alerted int"
            )
        before = earlier.select(
            "device_id",
            F.col("first_alerted_on").alias("_first"),
            F.col("runs_alerted").alias("_runs"),
        )
        continuing = F.col("_runs").isNotNull()
        return alerts.join(F.broadcast(before), "device_id", "left").select(
            *alerts.columns,
            F.when(continuing, F.lit(CONTINUING)).otherwise(F.lit(NEW)).alias("status"),
            F.coalesce(F.col("_first"), F.lit(run_date)).alias("first_alerted_on"),
            F.coalesce(F.col("_runs") + 1, F.lit(1)).cast("int").alias("runs_alerted"),
        )

    return transform


# The names of what the history summary counts (:func:`summary_tallies`).
BY_STATUS, CLEARED = "alerts_by_status", "cleared_devices"


def summary_tallies(
    previous: PreviousRun, alerts: DataFrame
) -> dict[str, tuple[DataFrame, str | None]]:
    """What the report's ``history`` counts, to be counted with the report's other tallies in
    one query (``jobs.report.tallies``): the alerts per status, and the devices cleared
    (alerted at the previous run date, not now), one count per device."""
    counted: dict[str, tuple[DataFrame, str | None]] = {BY_STATUS: (alerts, "status")}
    if previous.alerts is not None:
        gone = previous.alerts.join(alerts.select("device_id"), "device_id", "left_anti")
        counted[CLEARED] = (gone, "device_id")
    return counted


def summary(previous: PreviousRun, tallied: dict[str, dict[Any, int]]) -> dict[str, Any]:
    """The report's ``history`` from the counts of :func:`summary_tallies`: the previous run
    date, how many alerts are new and continuing, and the devices cleared."""
    by_status = tallied[BY_STATUS]
    cleared = sorted(tallied.get(CLEARED, {}))
    return {
        "previous_run_date": previous.run_date.isoformat() if previous.run_date else None,
        NEW: by_status.get(NEW, 0),
        CONTINUING: by_status.get(CONTINUING, 0),
        "cleared": len(cleared),
        "cleared_devices": cleared,
    }
