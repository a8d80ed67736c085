"""From checked readings to usage: interval amounts, then usage per device and day.

The readings are read once, in one order: every step up to the aggregation is a window over a
component's readings in time order (all sharing the one shuffle and sort of validation), and
every reading keeps its status on the way. :func:`by_day` then folds them into one small
table, the run's ledger of readings: a row per (device, day) of used intervals with its
usage, and a row per status and reject record of the rest, each with the number of readings
it stands for. Counts, rejects and daily usage all come from that table, so the readings
are never cached or read twice. Built-in Spark functions only; readings never reach the
driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from dependencies.run_window import RunWindow
from dependencies.transforms import Transform
from jobs.validate import OUTSIDE_WINDOW, PARTITION, USED

IMPORT_KWH = "IMPORT_KWH"
EXPORT_KWH = "EXPORT_KWH"
TAMPER_COUNT = "TAMPER_COUNT"
MINUTES_PER_DAY = 1440
MICROS_PER_DAY = 86_400_000_000
MICROS_PER_HOUR = 3_600_000_000
# What a component measures, as a flag on each of its intervals (no string compared per row).
KIND_FLAGS = {"is_import": IMPORT_KWH, "is_export": EXPORT_KWH, "is_tamper": TAMPER_COUNT}
HOURS = range(24)
# In the ledger (:func:`by_day`): how many input readings a row stands for.
READINGS = "readings"
# The UTC day of a reading's instant, and of the reading that opened a register's interval.
READING_DAY = "reading_day"
OPENED_ON = "opened_on"
# On a reading carried over from an earlier day (the state a day continues from): how many
# valid readings its component had up to it (capped at 2, all that ``contiguous`` needs), and
# the latest instant that ended its zero run (:func:`mark_zero_runs`).
CARRIED_USED = "carried_used"
CARRIED_RUN_SINCE = "carried_run_since"
# Per interval: the instant it ends a zero run at, if it does (a non-zero interval's end, a
# non-contiguous interval's start).
RUN_BREAK = "run_break"

COMPONENT = "measuring_component_id"
# A checked reading as the pass carries it from step to step (with its partition and the
# carried state columns).
READING = (COMPONENT, "measured_at", "value", "status", "record")


def _in_time_order() -> Window:
    return Window.partitionBy(COMPONENT).orderBy("measured_at")


def _day_start(instant: Column) -> Column:
    """The start of an instant's UTC day, by arithmetic (no time-zone rules per row)."""
    micros = F.unix_micros(instant)
    return F.timestamp_micros(micros - F.pmod(micros, F.lit(MICROS_PER_DAY)))


def _utc_day(instant: Column) -> Column:
    """The UTC date of an instant, by arithmetic."""
    return F.date_from_unix_date(F.floor(F.unix_micros(instant) / MICROS_PER_DAY).cast("int"))


def _optional(frame: DataFrame, name: str, type_name: str) -> Column:
    """Column ``name`` of ``frame``, or a null of ``type_name`` where it has none."""
    return F.col(name) if name in frame.columns else F.lit(None).cast(type_name)


def _utc_hour(instant: Column) -> Column:
    """The UTC hour of day (0-23) of an instant, by arithmetic."""
    return (F.pmod(F.unix_micros(instant), F.lit(MICROS_PER_DAY)) / MICROS_PER_HOUR).cast("int")


def to_intervals(
    components: DataFrame, usage: dict[str, Any], baseline_start: datetime
) -> Transform:
    """Checked readings -> the same rows, each used reading with the interval it closes:
    ``start``, ``end``, ``amount`` (``start`` null for other readings, and for a register's
    first read, which only opens), and whether the interval starts where the component's
    previous one ended (``contiguous``).

    Of a component's valid readings before ``baseline_start`` only the last is needed (it
    opens B's first interval): the others become ``outside_window`` here, in the same window
    that finds each reading's predecessor.

    CUMULATIVE: the difference to the component's previous used reading, over [prev, this).
    A fall is a rollover (amount wraps at ``register_max``) when the previous read was near
    the top and this one near zero; any other fall is a rollback: amount 0, the fall kept in
    ``fallen_kwh``. INTERVAL: the value, over [measured_at - interval_minutes, measured_at).
    An interval longer than ``gap_factor`` x its cadence closes a gap (``is_gap``).

    The previous used reading is found on the readings alone (a narrow row per reading);
    the component's attributes are joined after."""
    steps = (
        _with_previous_reading(baseline_start),
        _opener_settled(baseline_start),
        _with_component(components),
        _with_interval(usage),
        _with_gap(usage),
    )

    def transform(readings: DataFrame) -> DataFrame:
        return reduce(DataFrame.transform, steps, readings)

    return transform


def _before_baseline(baseline_start: datetime) -> Column:
    return F.col("measured_at") < F.lit(baseline_start)


def _with_previous_reading(baseline_start: datetime) -> Transform:
    """Readings -> the same, narrow (the carried state columns always there), with what one
    window over each component's readings in time order finds: the latest valid reading
    before B (``_opener_at``, and its carried count ``_opener_used``), each reading's
    previous valid one (``_prev_at``, ``_prev_value``) and how many valid readings in the
    range precede it (``_used_in_range``)."""

    def transform(readings: DataFrame) -> DataFrame:
        carried_used = _optional(readings, CARRIED_USED, "long")
        carried_since = _optional(readings, CARRIED_RUN_SINCE, "timestamp")
        partition = _optional(readings, PARTITION, "string")
        earlier = _in_time_order().rowsBetween(Window.unboundedPreceding, -1)
        whole = _in_time_order().rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
        valid = F.col("status") == USED
        before_baseline = _before_baseline(baseline_start)
        return readings.select(
            *READING,
            partition.alias(PARTITION),
            carried_used.alias(CARRIED_USED),
            carried_since.alias(CARRIED_RUN_SINCE),
            F.max(F.when(valid & before_baseline, F.col("measured_at")))
            .over(whole)
            .alias("_opener_at"),
            F.max(F.when(valid & before_baseline, carried_used)).over(whole).alias("_opener_used"),
            F.last(F.when(valid, F.col("measured_at")), ignorenulls=True)
            .over(earlier)
            .alias("_prev_at"),
            F.last(F.when(valid, F.col("value")), ignorenulls=True)
            .over(earlier)
            .alias("_prev_value"),
            F.count(F.when(valid & ~before_baseline, True)).over(earlier).alias("_used_in_range"),
        )

    return transform


def _opener_settled(baseline_start: datetime) -> Transform:
    """Readings with their predecessors -> the valid readings before B other than the opener
    ``outside_window``; a reading in the range with its predecessor and ``_used_before``, the
    opener (if any) and the range's used readings before it; the opener itself has no
    predecessor. A carried reading opens with its own count."""

    def transform(found: DataFrame) -> DataFrame:
        valid = F.col("status") == USED
        before_baseline = _before_baseline(baseline_start)
        opener = F.col("_opener_at")
        opener_count = F.coalesce(F.col("_opener_used"), opener.isNotNull().cast("long"))
        return found.select(
            COMPONENT,
            "measured_at",
            "value",
            F.when(valid & before_baseline & (F.col("measured_at") < opener), F.lit(OUTSIDE_WINDOW))
            .otherwise(F.col("status"))
            .alias("status"),
            "record",
            PARTITION,
            CARRIED_USED,
            CARRIED_RUN_SINCE,
            F.when(~before_baseline, F.col("_prev_at")).alias("_prev_at"),
            F.when(~before_baseline, F.col("_prev_value")).alias("_prev_value"),
            F.when(~before_baseline, F.col("_used_in_range") + opener_count)
            .otherwise(F.lit(0))
            .alias("_used_before"),
        )

    return transform


def _with_component(components: DataFrame) -> Transform:
    """Readings -> the same, with their component's device, cadence, register maximum,
    whether it is a register (``_cumulative``) and what it measures (:data:`KIND_FLAGS`)."""
    attributes = components.select(
        COMPONENT,
        "device_id",
        "interval_minutes",
        "register_max",
        (F.col("reading_type") == "CUMULATIVE").alias("_cumulative"),
        *[(F.col("component_type") == kind).alias(name) for name, kind in KIND_FLAGS.items()],
    )

    def transform(readings: DataFrame) -> DataFrame:
        return readings.join(F.broadcast(attributes), COMPONENT, "left")

    return transform


def _with_interval(usage: dict[str, Any]) -> Transform:
    """Readings of settled status with their predecessor and component -> each used one with
    the interval it closes: ``start``, ``end``, ``amount``, ``fallen_kwh``, ``contiguous``
    and, for a register, the day it opened on (:data:`OPENED_ON`)."""

    def transform(readings: DataFrame) -> DataFrame:
        used = F.col("status") == USED
        prev_value, prev_at = F.col("_prev_value"), F.col("_prev_at")
        register_max = F.col("register_max")
        rise = F.col("value") - prev_value
        rollover = (
            (rise < 0)
            & register_max.isNotNull()
            & (prev_value >= usage["rollover_high_share"] * register_max)
            & (F.col("value") <= usage["rollover_low_share"] * register_max)
        )
        cumulative = F.col("_cumulative")
        start = F.when(
            used,
            F.when(cumulative, prev_at).otherwise(
                F.col("measured_at") - F.make_interval(mins=F.col("interval_minutes"))
            ),
        )
        # A register's first interval opens at its first read; an INTERVAL reading's follows
        # the previous reading only if that ended where it starts.
        contiguous = F.when(cumulative, F.col("_used_before") >= 2).otherwise(prev_at == start)
        return readings.select(
            *READING,
            PARTITION,
            CARRIED_USED,
            CARRIED_RUN_SINCE,
            "device_id",
            *KIND_FLAGS,
            "interval_minutes",
            start.alias("start"),
            F.col("measured_at").alias("end"),
            F.when(~cumulative, F.col("value"))
            .when(rise >= 0, rise)
            .when(rollover, register_max - prev_value + F.col("value"))
            .otherwise(F.lit(0.0))
            .alias("amount"),
            F.when(cumulative & (rise < 0) & ~rollover, -rise)
            .otherwise(F.lit(0.0))
            .alias("fallen_kwh"),
            F.coalesce(contiguous, F.lit(False)).alias("contiguous"),
            F.when(cumulative, _utc_day(start)).alias(OPENED_ON),
        )

    return transform


def _with_gap(usage: dict[str, Any]) -> Transform:
    """Intervals -> their ``minutes``, and whether each closes a gap (``is_gap``: longer
    than ``gap_factor`` x its cadence)."""

    def transform(intervals: DataFrame) -> DataFrame:
        minutes = (F.unix_micros("end") - F.unix_micros("start")) / 60e6
        return intervals.withColumn("minutes", minutes).withColumn(
            "is_gap", F.col("minutes") > usage["gap_factor"] * F.col("interval_minutes")
        )

    return transform


def holding_period(installs: DataFrame, instant: str, *carried: str) -> Transform:
    """Join each row to the install period of its device (``device_id``) that holds its
    ``instant`` column, if any: the period's ``carried`` columns (null without one) and
    ``_in_period``, whether a period holds it."""
    periods = installs.select(
        F.col("device_id").alias("_period_device_id"),
        F.col("installed_at").alias("_installed_at"),
        F.col("removed_at").alias("_removed_at"),
        *carried,
    )

    def transform(frame: DataFrame) -> DataFrame:
        at = frame[instant]
        inside = (
            (frame["device_id"] == periods["_period_device_id"])
            & (at >= periods["_installed_at"])
            & (periods["_removed_at"].isNull() | (at < periods["_removed_at"]))
        )
        return (
            frame.join(F.broadcast(periods), inside, "left")
            .withColumn("_in_period", F.col("_period_device_id").isNotNull())
            .drop("_period_device_id", "_installed_at", "_removed_at")
        )

    return transform


def attach_installs(installs: DataFrame) -> Transform:
    """Mark intervals whose start lies in an install period of their device (``installed``),
    and carry that period's generation flag."""

    def transform(intervals: DataFrame) -> DataFrame:
        return intervals.transform(
            holding_period(installs, "start", "has_generation")
        ).withColumnRenamed("_in_period", "installed")

    return transform


def mark_zero_runs(usage: dict[str, Any]) -> Transform:
    """Mark shape intervals (import, not a gap, cadence <= ``shape_max_interval_minutes``) and
    give each zero one (amount < ``zero_interval_kwh``) the minutes of the zero run it ends,
    within its UTC day; a missing interval breaks a run.

    One pass in the readings' order: a zero run is contiguous, so its minutes so far are the
    time since it began, which is the latest of: the end of the last interval that was not
    zero, the start of the last interval that did not follow on from its predecessor, and
    midnight. Rows without an interval neither break nor extend a run."""

    def transform(intervals: DataFrame) -> DataFrame:
        has_interval = F.col("start").isNotNull()
        shape = (
            has_interval
            & F.col("is_import")
            & ~F.col("is_gap")
            & (F.col("interval_minutes") <= usage["shape_max_interval_minutes"])
        )
        zero = F.col("is_shape") & (F.col("amount") < usage["zero_interval_kwh"])
        so_far = _in_time_order().rowsBetween(Window.unboundedPreceding, Window.currentRow)
        breaks_here = F.when(has_interval & ~zero, F.col("end"))
        last_break_end = F.max(F.coalesce(breaks_here, F.col(CARRIED_RUN_SINCE))).over(so_far)
        last_hole_start = F.max(F.when(has_interval & ~F.col("contiguous"), F.col("start"))).over(
            so_far
        )
        run_start = F.greatest(last_break_end, last_hole_start, _day_start(F.col("start")))
        return (
            intervals.withColumn("is_shape", shape)
            .withColumn(
                "zero_run_minutes",
                F.when(zero, (F.unix_micros("end") - F.unix_micros(run_start)) / 60e6),
            )
            .withColumn(
                RUN_BREAK,
                F.greatest(
                    breaks_here, F.when(has_interval & ~F.col("contiguous"), F.col("start"))
                ),
            )
        )

    return transform


def split_by_day(intervals: DataFrame) -> DataFrame:
    """One row per (interval, UTC day): an interval belongs to the day (and hour) of its
    start; a gap-closing interval is spread over the days it spans, by overlap. ``piece`` is
    0 on a reading's first row; a reading without an interval keeps one row, day null."""
    first_day = _utc_day(F.col("start"))
    last_day = _utc_day(F.col("end") - F.expr("INTERVAL 1 MICROSECOND"))
    # Only a gap spanning days becomes several rows (no array is made for any other row).
    days = F.when(F.col("is_gap") & (first_day < last_day), F.sequence(first_day, last_day))
    frame = (
        intervals.select("*", F.posexplode_outer(days).alias("piece", "day"))
        .withColumn("piece", F.coalesce("piece", F.lit(0)))
        .withColumn("day", F.coalesce("day", first_day))
    )
    day_start = F.timestamp_micros(F.unix_date("day").cast("long") * MICROS_PER_DAY)
    overlap = F.unix_micros(F.least("end", day_start + F.expr("INTERVAL 1 DAY"))) - F.unix_micros(
        F.greatest("start", day_start)
    )
    share = F.when(F.col("is_gap"), overlap / (F.col("minutes") * 60e6)).otherwise(F.lit(1.0))
    return (
        frame.withColumn("amount", F.col("amount") * share)
        .withColumn(
            "fallen_kwh", F.when(F.col("piece") == 0, F.col("fallen_kwh")).otherwise(F.lit(0.0))
        )
        .withColumn("hour", _utc_hour(F.col("start")))
    )


def _day_aggregates(intervals: DataFrame) -> list[Column]:
    """The ledger's numbers of a group of intervals (see :func:`by_day`), and how each merges
    across groups: ``(column, merge)`` with merge ``sum``, ``max`` or ``sum_each`` (arrays)."""
    has_interval = F.col("start").isNotNull()
    is_import = has_interval & F.col("is_import")
    is_export = F.col("is_export")
    shape = F.col("is_shape")
    amount = F.col("amount")
    shape_hour = F.col("_shape_hour")  # the hour of a shape interval, tested once per row
    return [
        F.count(F.when(F.col("piece") == 0, True)).alias(READINGS),
        F.sum(F.when(is_import, amount)).alias("import_kwh"),
        F.sum(F.when(is_import & ~F.col("installed"), amount)).alias("uninstalled_import_kwh"),
        F.sum(F.when(is_export, amount)).alias("export_kwh"),
        F.sum(F.when(is_export & F.col("installed") & ~F.col("has_generation"), amount)).alias(
            "export_without_generation_kwh"
        ),
        F.sum(F.when(F.col("is_tamper"), amount)).alias("tamper_events"),
        F.sum(F.when(is_import, F.col("fallen_kwh"))).alias("rollback_kwh"),  # registers only
        F.count(F.when(is_import & ~F.col("is_gap"), True)).alias("present_intervals"),
        F.max(F.when(is_import, MINUTES_PER_DAY / F.col("interval_minutes"))).alias(
            "expected_intervals"
        ),
        F.count(F.when(shape, True)).alias("shape_intervals"),
        F.sum(F.when(shape, amount)).alias("shape_kwh"),
        F.sum(F.when(shape, amount * amount)).alias("shape_kwh_squared"),
        F.max("zero_run_minutes").alias("longest_zero_run_minutes"),
        F.array(*[F.sum(F.when(shape_hour == h, amount)) for h in HOURS]).alias("hour_kwh"),
        F.array(*[F.count_if(shape_hour == h) for h in HOURS]).alias("hour_intervals"),
        F.max(F.when(F.col("installed"), F.col("start"))).alias("latest_installed_start"),
    ]


# How each of the ledger's numbers merges across rows of one (device, day).
MERGED_BY_MAX = ("expected_intervals", "longest_zero_run_minutes", "latest_installed_start")
MERGED_EACH = ("hour_kwh", "hour_intervals")
LEDGER_KEYS = ("device_id", "day", "status", "record")
# What places a row of :func:`by_component_day`; its other columns are its numbers.
ROW_KEYS = (*LEDGER_KEYS, PARTITION, READING_DAY, COMPONENT, OPENED_ON)


def by_component_day(intervals: DataFrame, *kept: Column) -> DataFrame:
    """The readings' rows, per input partition, reading day, component, (device,) interval
    day and opening day, status and reject record: the ledger's numbers (:func:`by_day`),
    and the aggregates ``kept`` that a caller adds to the same aggregation (the ledger store
    keeps what each component's next day continues from). Rows of one (device, day) merge
    exactly (:func:`merge_rows`, without ``kept``), so a day's rows can be kept and merged
    with other days' later."""
    has_interval = F.col("start").isNotNull()
    return (
        intervals.withColumn("_shape_hour", F.when(F.col("is_shape"), F.col("hour")))
        .groupBy(
            PARTITION,
            _utc_day(F.col("measured_at")).alias(READING_DAY),
            COMPONENT,
            F.when(has_interval, F.col("device_id")).alias("device_id"),
            "day",
            OPENED_ON,
            "status",
            "record",
        )
        .agg(*_day_aggregates(intervals), *kept)
    )


def _numbers(rows: DataFrame) -> list[str]:
    """The numbers of rows of :func:`by_component_day`: every column but :data:`ROW_KEYS`."""
    return [c for c in rows.columns if c not in ROW_KEYS]


def merge_rows(rows: DataFrame) -> DataFrame:
    """Rows of :func:`by_component_day` (without the aggregates a caller kept) -> the ledger:
    one row per (device, day, status, record), its numbers summed (counts, amounts, hourly
    arrays element by element) or maximised (the latest, the longest, the expected)."""
    merged = []
    for name in _numbers(rows):
        if name in MERGED_BY_MAX:
            merged.append(F.max(name).alias(name))
        elif name in MERGED_EACH:
            hourly = F.col(name)  # one column reference for the 24 hours, as in jobs/rules.py
            merged.append(F.array(*[F.sum(hourly[h]) for h in HOURS]).alias(name))
        else:
            merged.append(F.sum(name).alias(name))
    return rows.groupBy(*LEDGER_KEYS).agg(*merged)


def by_day(intervals: DataFrame) -> DataFrame:
    """The ledger of the readings: per (device, day) of used intervals, the day's import,
    export, tamper increments, the event totals the rules read (uninstalled import, export
    without generation, rollbacks), presence, the shape statistics of its import intervals
    (sums, hourly sums, longest zero run) and its latest installed interval's start; per
    status and reject ``record`` of the other readings, nothing but their number
    (``readings``, on every row: how many input readings it stands for).

    The aggregations keep only numbers (hash aggregations, no sort of the intervals)."""
    return merge_rows(by_component_day(intervals))


def run_ledger(window: RunWindow) -> Transform:
    """Rows of :func:`by_component_day` (without the aggregates a caller kept) of the run's
    read range, however far back their components' chains of readings began -> the run's
    ledger, as a run reading only its own range sees it: a register interval opened before
    the range is no interval (its closing reading only opens), and of a component's valid
    readings before B only the last is used (it opens B), the others are ``outside_window``."""
    first_day, baseline_day = window.read_start_date, window.baseline_start_date

    def transform(rows: DataFrame) -> DataFrame:
        opened_before = F.col(OPENED_ON) < F.lit(first_day)
        numbers = [c for c in _numbers(rows) if c != READINGS]
        rows = rows.select(
            *[
                F.when(~opened_before | F.col(OPENED_ON).isNull(), F.col(c)).alias(c)
                if c in ("device_id", "day", *numbers)
                else F.col(c)
                for c in rows.columns
            ]
        )
        before_b = (F.col("status") == USED) & (F.col(READING_DAY) < F.lit(baseline_day))
        openers = _openers(rows.where(before_b), rows.schema, numbers)
        return merge_rows(
            rows.where(~before_b).select(*LEDGER_KEYS, READINGS, *numbers).unionByName(openers)
        )

    return transform


def _openers(before_b: DataFrame, schema: StructType, numbers: list[str]) -> DataFrame:
    """The valid readings before B (``before_b``) -> the ledger's rows for them: per
    component, the last one ``used`` (it opens B) and the others ``outside_window``, as
    readings without a device, a day or any number (``schema``: their rows' types)."""
    per_component = before_b.groupBy(COMPONENT).agg(F.sum(READINGS).alias("_valid"))
    kept = [F.lit(None).cast(schema[c].dataType).alias(c) for c in numbers]
    return (
        per_component.select(
            F.explode(
                F.array(
                    F.struct(F.lit(USED).alias("status"), F.lit(1).cast("long").alias(READINGS)),
                    F.struct(
                        F.lit(OUTSIDE_WINDOW).alias("status"),
                        (F.col("_valid") - 1).alias(READINGS),
                    ),
                )
            ).alias("_row")
        )
        .select(
            F.lit(None).cast("string").alias("device_id"),
            F.lit(None).cast("date").alias("day"),
            "_row.status",
            F.lit(None).cast("string").alias("record"),
            f"_row.{READINGS}",
            *kept,
        )
        .where(F.col(READINGS) > 0)
    )


def readings_intervals(
    components: DataFrame, installs: DataFrame, usage: dict[str, Any], chain_start: datetime
) -> Transform:
    """Checked readings, with the readings they continue from (one per component, before
    ``chain_start``, carrying :data:`CARRIED_USED` and :data:`CARRIED_RUN_SINCE`) -> each
    reading with its interval, zero run and install period."""

    def transform(readings: DataFrame) -> DataFrame:
        return (
            readings.transform(to_intervals(components, usage, chain_start))
            .transform(mark_zero_runs(usage))
            .where(F.col(CARRIED_USED).isNull())  # carried readings only open intervals
            .transform(attach_installs(installs))
        )

    return transform


def readings_rows(
    components: DataFrame,
    installs: DataFrame,
    usage: dict[str, Any],
    chain_start: datetime,
    kept: Sequence[Column] = (),
) -> Transform:
    """The one pass over the readings: as :func:`readings_intervals`, folded into the rows of
    :func:`by_component_day` (with the aggregates ``kept``)."""

    def transform(readings: DataFrame) -> DataFrame:
        return (
            readings.transform(readings_intervals(components, installs, usage, chain_start))
            .transform(split_by_day)
            .transform(by_component_day, *kept)
        )

    return transform


def daily_usage(window: RunWindow) -> Transform:
    """Ledger -> usage per (device, day) of B and W."""

    def transform(ledger: DataFrame) -> DataFrame:
        return ledger.where(
            F.col("device_id").isNotNull()
            & F.col("day").between(window.baseline_start_date, window.run_date)
        ).drop("status", "record", READINGS)

    return transform
