"""From readings to usage: interval amounts, then daily usage per device.

Everything here runs on built-in Spark functions and windows; readings never reach the
driver. Windows partition by component (or a finer key), so the one shuffle that groups a
component's readings serves them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from dependencies.run_window import RunWindow

IMPORT_KWH = "IMPORT_KWH"
EXPORT_KWH = "EXPORT_KWH"
TAMPER_COUNT = "TAMPER_COUNT"
MINUTES_PER_DAY = 1440
HOURS = range(24)

Transform = Callable[[DataFrame], DataFrame]


def to_intervals(components: DataFrame, usage: dict[str, Any]) -> Transform:
    """Readings -> one row per interval with its ``amount``.

    CUMULATIVE: the difference to the component's previous reading, over [prev, this). A fall
    is a rollover (amount wraps at ``register_max``) when the previous read was near the top
    and this one near zero; any other fall is a rollback: amount 0, the fall kept in
    ``fallen_kwh``. INTERVAL: the value, over [measured_at - interval_minutes, measured_at).
    An interval longer than ``gap_factor`` x its cadence closes a gap (``is_gap``).
    """

    def transform(readings: DataFrame) -> DataFrame:
        by_time = Window.partitionBy("measuring_component_id").orderBy("measured_at")
        prev_value = F.lag("value").over(by_time)
        prev_at = F.lag("measured_at").over(by_time)
        register_max = F.col("register_max")
        rise = F.col("value") - prev_value
        rollover = (
            (rise < 0)
            & register_max.isNotNull()
            & (prev_value >= usage["rollover_high_share"] * register_max)
            & (F.col("value") <= usage["rollover_low_share"] * register_max)
        )
        cumulative = F.col("reading_type") == "CUMULATIVE"
        frame = readings.join(F.broadcast(components), "measuring_component_id").select(
            "measuring_component_id",
            "device_id",
            "component_type",
            "reading_type",
            "interval_minutes",
            F.when(cumulative, prev_at)
            .otherwise(F.col("measured_at") - F.make_interval(mins=F.col("interval_minutes")))
            .alias("start"),
            F.col("measured_at").alias("end"),
            F.when(~cumulative, F.col("value"))
            .when(rise >= 0, rise)
            .when(rollover, register_max - prev_value + F.col("value"))
            .otherwise(F.lit(0.0))
            .alias("amount"),
            F.when(cumulative & (rise < 0) & ~rollover, -rise).otherwise(F.lit(0.0)).alias(
                "fallen_kwh"
            ),
        )
        minutes = (F.unix_micros("end") - F.unix_micros("start")) / 60e6
        return (
            frame.where(F.col("start").isNotNull())
            .withColumn("minutes", minutes)
            .withColumn("is_gap", F.col("minutes") > usage["gap_factor"] * F.col("interval_minutes"))
        )

    return transform


def attach_installs(installs: DataFrame) -> Transform:
    """Mark intervals whose start lies in an install period of their device, and carry that
    period's service point, customer class and generation flag."""

    def transform(intervals: DataFrame) -> DataFrame:
        periods = installs.select(
            F.col("device_id").alias("_device_id"),
            "installed_at",
            "removed_at",
            "service_point_id",
            "customer_class",
            "has_generation",
        )
        inside = (
            (intervals["device_id"] == periods["_device_id"])
            & (intervals["start"] >= periods["installed_at"])
            & (periods["removed_at"].isNull() | (intervals["start"] < periods["removed_at"]))
        )
        return (
            intervals.join(F.broadcast(periods), inside, "left")
            .withColumn("installed", F.col("_device_id").isNotNull())
            .drop("_device_id", "installed_at", "removed_at")
        )

    return transform


def split_by_day(intervals: DataFrame) -> DataFrame:
    """One row per (interval, UTC day): an interval belongs to the day (and hour) of its
    start; a gap-closing interval is spread over the days it spans, by overlap."""
    first_day = F.to_date("start")
    last_day = F.to_date(F.col("end") - F.expr("INTERVAL 1 MICROSECOND"))
    days = F.when(F.col("is_gap") & (first_day < last_day), F.sequence(first_day, last_day))
    frame = intervals.withColumn("day", F.explode(F.coalesce(days, F.array(first_day))))
    day_start = F.col("day").cast("timestamp")
    overlap = F.unix_micros(F.least("end", day_start + F.expr("INTERVAL 1 DAY"))) - F.unix_micros(
        F.greatest("start", day_start)
    )
    share = F.when(F.col("is_gap"), overlap / (F.col("minutes") * 60e6)).otherwise(F.lit(1.0))
    return (
        frame.withColumn("amount", F.col("amount") * share)
        .withColumn("fallen_kwh", F.when(F.col("day") == first_day, F.col("fallen_kwh"))
                    .otherwise(F.lit(0.0)))
        .withColumn("hour", F.hour("start"))
    )


def mark_zero_runs(usage: dict[str, Any]) -> Transform:
    """Per shape interval (import, not a gap, cadence <= ``shape_max_interval_minutes``), the
    minutes of the zero-import run (amount < ``zero_interval_kwh``) it ends, within its day;
    a missing interval breaks a run."""

    def transform(intervals: DataFrame) -> DataFrame:
        shape = (
            (F.col("component_type") == IMPORT_KWH)
            & ~F.col("is_gap")
            & (F.col("interval_minutes") <= usage["shape_max_interval_minutes"])
        )
        frame = intervals.withColumn("is_shape", shape)
        zero = F.col("amount") < usage["zero_interval_kwh"]
        # One window order (component, day, is_shape, start) serves every step: a row's run
        # is its zero minutes since the last break, read off running totals.
        day = Window.partitionBy("measuring_component_id", "day", "is_shape").orderBy("start")
        so_far = day.rowsBetween(Window.unboundedPreceding, Window.currentRow)
        breaks = ~zero | F.lag("end").over(day).isNull() | (F.lag("end").over(day) != F.col("start"))
        zero_minutes = F.when(zero, F.col("minutes")).otherwise(F.lit(0.0))
        frame = frame.withColumn("_zero_total", F.sum(zero_minutes).over(so_far))
        # The zero minutes before the row's run began: the total just before its last break
        # (totals never fall, so the latest is the largest).
        before_run = F.max(F.when(breaks, F.col("_zero_total") - zero_minutes)).over(so_far)
        return frame.withColumn(
            "zero_run_minutes",
            F.when(F.col("is_shape") & zero, F.col("_zero_total") - before_run),
        ).drop("_zero_total")

    return transform


def daily_usage(window: RunWindow, installs: DataFrame) -> Transform:
    """Per (device, day) of B and W: import, export, tamper increments, the evidence the rules
    need (uninstalled import, export without generation, rollbacks), presence, the shape
    statistics of the day's import intervals (sums, hourly sums, longest zero run), and the
    install period of the day's latest installed interval (``latest_install``).

    The aggregation keeps only numbers (a hash aggregation, no sort of the intervals); the
    latest install's service point, class and generation come from ``installs`` after it."""

    def transform(intervals: DataFrame) -> DataFrame:
        kind = F.col("component_type")
        is_import = kind == IMPORT_KWH
        shape = F.col("is_shape")
        amount = F.col("amount")
        return (
            intervals.where(
                F.col("day").between(window.baseline_start_date, window.run_date)
            )
            .groupBy("device_id", "day")
            .agg(
                F.sum(F.when(is_import, amount)).alias("import_kwh"),
                F.sum(F.when(is_import & ~F.col("installed"), amount)).alias(
                    "uninstalled_import_kwh"
                ),
                F.sum(F.when(kind == EXPORT_KWH, amount)).alias("export_kwh"),
                F.sum(
                    F.when(
                        (kind == EXPORT_KWH) & F.col("installed") & ~F.col("has_generation"),
                        amount,
                    )
                ).alias("export_without_generation_kwh"),
                F.sum(F.when(kind == TAMPER_COUNT, amount)).alias("tamper_events"),
                F.sum(
                    F.when(is_import & (F.col("reading_type") == "CUMULATIVE"), F.col("fallen_kwh"))
                ).alias("rollback_kwh"),
                F.count(F.when(is_import & ~F.col("is_gap"), True)).alias("present_intervals"),
                F.max(F.when(is_import, MINUTES_PER_DAY / F.col("interval_minutes"))).alias(
                    "expected_intervals"
                ),
                F.count(F.when(shape, True)).alias("shape_intervals"),
                F.sum(F.when(shape, amount)).alias("shape_kwh"),
                F.sum(F.when(shape, amount * amount)).alias("shape_kwh_squared"),
                F.max("zero_run_minutes").alias("longest_zero_run_minutes"),
                F.array(*[F.sum(F.when(shape & (F.col("hour") == h), amount)) for h in HOURS])
                .alias("hour_kwh"),
                F.array(*[F.count(F.when(shape & (F.col("hour") == h), True)) for h in HOURS])
                .alias("hour_intervals"),
                F.max(F.when(F.col("installed"), F.col("start"))).alias("latest_installed_start"),
            )
            .transform(_with_latest_install(installs))
        )

    return transform


def _with_latest_install(installs: DataFrame) -> Transform:
    """Add ``latest_install``: service point, class and generation of the install period that
    holds ``latest_installed_start`` (null when the day has no installed interval)."""
    periods = installs.select(
        F.col("device_id").alias("_device_id"),
        F.col("installed_at").alias("_installed_at"),
        F.col("removed_at").alias("_removed_at"),
        F.struct("service_point_id", "customer_class", "has_generation").alias("latest_install"),
    )

    def transform(daily: DataFrame) -> DataFrame:
        start = daily["latest_installed_start"]
        inside = (
            (daily["device_id"] == periods["_device_id"])
            & (start >= periods["_installed_at"])
            & (periods["_removed_at"].isNull() | (start < periods["_removed_at"]))
        )
        return daily.join(F.broadcast(periods), inside, "left").drop(
            "_device_id", "_installed_at", "_removed_at"
        )

    return transform
