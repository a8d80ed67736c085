"""Readings -> interval amounts -> daily usage, each step on tiny inputs."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dependencies.config import bundled_defaults
from dependencies.run_window import RunWindow
from dependencies.tables import ddl
from jobs import usage

USAGE = bundled_defaults()["usage"]
# Before every reading of these tests (but the opener test's): no reading is before B.
BASELINE_START = datetime(2026, 10, 1, tzinfo=UTC)
COMPONENT_SCHEMA = ddl("measuring_component")
INSTALL_SCHEMA = ddl("install_event")


def readings(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    """Checked readings: (component, instant, value[, status]); status ``used`` by default."""
    rows = [(*row, "used")[:4] for row in rows]
    return spark.createDataFrame(
        rows, "measuring_component_id string, measured_at string, value double, status string"
    ).select(
        "measuring_component_id",
        F.col("measured_at").cast("timestamp").alias("measured_at"),
        "value",
        "status",
        F.lit(None).cast("string").alias("record"),
    )


def intervals_only(frame: DataFrame) -> DataFrame:
    return frame.where(F.col("start").isNotNull())


def components(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, COMPONENT_SCHEMA)


def amounts(frame: DataFrame) -> DataFrame:
    return frame.select(
        "measuring_component_id",
        F.date_format("start", "yyyy-MM-dd'T'HH:mm").alias("start"),
        F.date_format("end", "yyyy-MM-dd'T'HH:mm").alias("end"),
        "amount",
        "fallen_kwh",
        "is_gap",
    ).orderBy("measuring_component_id", "start")


def expected_amounts(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(
        rows,
        "measuring_component_id string, start string, end string, amount double, "
        "fallen_kwh double, is_gap boolean",
    )


def test_cumulative_register_is_differenced_with_rollover_and_rollback(spark: SparkSession) -> None:
    # GIVEN a register near its 1000 kWh top that wraps to zero, and one that is wound back
    comps = components(
        spark,
        [
            ("A", "D1", "IMPORT_KWH", "CUMULATIVE", 60, 1000.0),
            ("B", "D2", "IMPORT_KWH", "CUMULATIVE", 60, None),
        ],
    )
    reads = readings(
        spark,
        [
            ("A", "2026-11-01T00:00:00Z", 995.0),
            ("A", "2026-11-01T01:00:00Z", 999.0),
            ("A", "2026-11-01T02:00:00Z", 3.0),
            ("B", "2026-11-01T00:00:00Z", 50.0),
            ("B", "2026-11-01T01:00:00Z", 52.0),
            ("B", "2026-11-01T02:00:00Z", 47.0),
        ],
    )
    # WHEN readings become intervals
    result = reads.transform(usage.to_intervals(comps, USAGE, BASELINE_START)).transform(
        intervals_only
    )
    # THEN the first read opens, the wrap counts 1 + 3 kWh, the fall counts 0 and is kept as fallen
    expected = expected_amounts(
        spark,
        [
            ("A", "2026-11-01T00:00", "2026-11-01T01:00", 4.0, 0.0, False),
            ("A", "2026-11-01T01:00", "2026-11-01T02:00", 4.0, 0.0, False),
            ("B", "2026-11-01T00:00", "2026-11-01T01:00", 2.0, 0.0, False),
            ("B", "2026-11-01T01:00", "2026-11-01T02:00", 0.0, 5.0, False),
        ],
    )
    assert_approx_df_equality(amounts(result), expected, 1e-9, ignore_nullable=True)


def test_fall_without_register_max_near_top_is_a_rollback(spark: SparkSession) -> None:
    # GIVEN a register with a maximum whose fall starts well below the top
    comps = components(spark, [("A", "D1", "IMPORT_KWH", "CUMULATIVE", 60, 1000.0)])
    reads = readings(
        spark, [("A", "2026-11-01T00:00:00Z", 500.0), ("A", "2026-11-01T01:00:00Z", 2.0)]
    )
    # WHEN readings become intervals
    row = (
        reads.transform(usage.to_intervals(comps, USAGE, BASELINE_START))
        .transform(intervals_only)
        .first()
    )
    # THEN it is a rollback: no usage, 498 kWh fallen
    assert (row["amount"], row["fallen_kwh"]) == (0.0, 498.0)


def test_interval_reading_covers_the_interval_ending_at_it_and_long_intervals_are_gaps(
    spark: SparkSession,
) -> None:
    # GIVEN an INTERVAL component, and a CUMULATIVE one with three hours between two reads
    comps = components(
        spark,
        [
            ("I", "D1", "IMPORT_KWH", "INTERVAL", 15, None),
            ("C", "D2", "IMPORT_KWH", "CUMULATIVE", 60, None),
        ],
    )
    reads = readings(
        spark,
        [
            ("I", "2026-11-01T00:15:00Z", 0.25),
            ("C", "2026-11-01T00:00:00Z", 10.0),
            ("C", "2026-11-01T01:30:00Z", 11.0),
            ("C", "2026-11-01T04:30:00Z", 14.0),
        ],
    )
    # WHEN readings become intervals
    result = reads.transform(usage.to_intervals(comps, USAGE, BASELINE_START)).transform(
        intervals_only
    )
    # THEN the interval value ends at its stamp; 90 minutes is within 1.5 x 60, 180 is a gap
    expected = expected_amounts(
        spark,
        [
            ("C", "2026-11-01T00:00", "2026-11-01T01:30", 1.0, 0.0, False),
            ("C", "2026-11-01T01:30", "2026-11-01T04:30", 3.0, 0.0, True),
            ("I", "2026-11-01T00:00", "2026-11-01T00:15", 0.25, 0.0, False),
        ],
    )
    assert_approx_df_equality(amounts(result), expected, 1e-9, ignore_nullable=True)


def test_gap_interval_is_spread_over_the_days_it_spans(spark: SparkSession) -> None:
    # GIVEN a 48-hour gap from 2026-11-01T12:00 to 11-03T12:00 carrying 48 kWh
    comps = components(spark, [("C", "D1", "IMPORT_KWH", "CUMULATIVE", 60, None)])
    reads = readings(
        spark, [("C", "2026-11-01T12:00:00Z", 0.0), ("C", "2026-11-03T12:00:00Z", 48.0)]
    )
    # WHEN intervals are split by day
    result = (
        reads.transform(usage.to_intervals(comps, USAGE, BASELINE_START))
        .transform(intervals_only)
        .transform(usage.split_by_day)
    )
    # THEN each day gets the kWh of the hours it overlaps: 12, 24, 12
    expected = spark.createDataFrame(
        [(date(2026, 11, 1), 12.0), (date(2026, 11, 2), 24.0), (date(2026, 11, 3), 12.0)],
        "day date, amount double",
    )
    assert_approx_df_equality(
        result.select("day", "amount").orderBy("day"), expected, 1e-9, ignore_nullable=True
    )


def test_interval_ending_at_midnight_stays_in_its_start_day(spark: SparkSession) -> None:
    # GIVEN an hourly interval from 23:00 to midnight
    comps = components(spark, [("C", "D1", "IMPORT_KWH", "CUMULATIVE", 60, None)])
    reads = readings(
        spark, [("C", "2026-11-01T23:00:00Z", 0.0), ("C", "2026-11-02T00:00:00Z", 1.0)]
    )
    # WHEN split by day
    rows = (
        reads.transform(usage.to_intervals(comps, USAGE, BASELINE_START))
        .transform(intervals_only)
        .transform(usage.split_by_day)
        .collect()
    )
    # THEN it belongs to 11-01 at hour 23, whole
    assert [(r["day"], r["hour"], r["amount"]) for r in rows] == [(date(2026, 11, 1), 23, 1.0)]


@pytest.mark.parametrize(
    ("start", "installed"),
    [
        ("2026-11-01T09:00:00Z", False),
        ("2026-11-01T10:00:00Z", True),
        ("2026-11-01T12:00:00Z", False),
    ],
)
def test_interval_is_installed_when_its_start_lies_in_an_install_period(
    spark: SparkSession, start: str, installed: bool
) -> None:
    # GIVEN an install period [10:00, 12:00)
    periods = spark.createDataFrame(
        [("E", "D1", "SP1", "2026-11-01T10:00:00Z", "2026-11-01T12:00:00Z", "RESIDENTIAL", False)],
        "install_event_id string, device_id string, service_point_id string, installed_at string, "
        "removed_at string, customer_class string, has_generation boolean",
    ).select(
        "install_event_id",
        "device_id",
        "service_point_id",
        F.col("installed_at").cast("timestamp").alias("installed_at"),
        F.col("removed_at").cast("timestamp").alias("removed_at"),
        "customer_class",
        "has_generation",
    )
    intervals = spark.createDataFrame([("D1", start)], "device_id string, start string").withColumn(
        "start", F.col("start").cast("timestamp")
    )
    # WHEN install periods are attached
    row = intervals.transform(usage.attach_installs(periods)).first()
    # THEN only a start inside the period carries its generation flag
    assert (row["installed"], row["has_generation"]) == (installed, False if installed else None)


def test_longest_zero_run_per_day_breaks_on_usage_and_on_missing_intervals(
    spark: SparkSession,
) -> None:
    # GIVEN hourly import: zero 00-03 (3 h), usage at 03, zero 04-06, a missing 06-07, zero 07-09
    comps = components(spark, [("C", "D1", "IMPORT_KWH", "INTERVAL", 60, None)])
    values = {1: 0.0, 2: 0.0, 3: 0.0, 4: 1.0, 5: 0.0, 6: 0.0, 8: 0.0, 9: 0.0}
    reads = readings(spark, [("C", f"2026-11-01T{h:02d}:00:00Z", v) for h, v in values.items()])
    # WHEN zero runs are marked
    result = reads.transform(usage.to_intervals(comps, USAGE, BASELINE_START)).transform(
        usage.mark_zero_runs(USAGE)
    )
    # THEN the longest run is 180 minutes
    assert result.agg(F.max("zero_run_minutes")).first()[0] == 180.0


def test_daily_usage_sums_import_export_tamper_and_counts_presence(spark: SparkSession) -> None:
    # GIVEN one device with hourly import, export and a daily tamper counter over one day
    comps = components(
        spark,
        [
            ("I", "D1", "IMPORT_KWH", "CUMULATIVE", 60, None),
            ("E", "D1", "EXPORT_KWH", "CUMULATIVE", 60, None),
            ("T", "D1", "TAMPER_COUNT", "CUMULATIVE", 1440, None),
        ],
    )
    rows = [("I", f"2026-11-01T{h:02d}:00:00Z", float(h)) for h in range(24)]
    rows += [("I", "2026-11-02T00:00:00Z", 24.0)]
    rows += [("E", "2026-11-01T00:00:00Z", 0.0), ("E", "2026-11-02T00:00:00Z", 3.0)]
    rows += [("T", "2026-11-01T00:00:00Z", 1.0), ("T", "2026-11-02T00:00:00Z", 3.0)]
    periods = spark.createDataFrame(
        [("E1", "D1", "SP1", None, None, "RESIDENTIAL", False)], INSTALL_SCHEMA
    ).withColumn("installed_at", F.lit("2026-01-01T00:00:00Z").cast("timestamp"))
    window = RunWindow(date(2026, 11, 1), 1, 1, 1)
    # WHEN daily usage is computed
    daily = (
        readings(spark, rows)
        .transform(usage.to_intervals(comps, USAGE, BASELINE_START))
        .transform(usage.mark_zero_runs(USAGE))
        .transform(usage.attach_installs(periods))
        .transform(usage.split_by_day)
        .transform(usage.by_day)
        .transform(usage.daily_usage(window))
    )
    # THEN 24 kWh import in 24 present hours of 24 expected; the export day is a gap of the
    # hourly export register (spread whole on its day); 2 tamper events; no zero run
    result = daily.select(
        "device_id",
        "day",
        "import_kwh",
        "export_kwh",
        "export_without_generation_kwh",
        "tamper_events",
        "uninstalled_import_kwh",
        "rollback_kwh",
        "present_intervals",
        "expected_intervals",
        "shape_intervals",
        "longest_zero_run_minutes",
        F.date_format("latest_installed_start", "MM-dd'T'HH:mm").alias("latest_installed_start"),
    )
    expected = spark.createDataFrame(
        [
            (
                "D1",
                date(2026, 11, 1),
                24.0,
                3.0,
                3.0,
                2.0,
                None,
                0.0,
                24,
                24.0,
                24,
                None,
                "11-01T23:00",
            )
        ],
        "device_id string, day date, import_kwh double, export_kwh double, "
        "export_without_generation_kwh double, tamper_events double, "
        "uninstalled_import_kwh double, rollback_kwh double, present_intervals bigint, "
        "expected_intervals double, shape_intervals bigint, longest_zero_run_minutes double, "
        "latest_installed_start string",
    )
    assert_df_equality(result, expected, ignore_nullable=True)


def test_readings_that_are_not_used_pass_through_without_an_interval(spark: SparkSession) -> None:
    # GIVEN a register read at 00, 01 and 02, with a rejected and a duplicate copy at 01:30
    comps = components(spark, [("C", "D1", "IMPORT_KWH", "CUMULATIVE", 60, None)])
    reads = readings(
        spark,
        [
            ("C", "2026-11-01T00:00:00Z", 10.0),
            ("C", "2026-11-01T01:00:00Z", 11.0),
            ("C", "2026-11-01T01:30:00Z", 500.0, "conflicting_duplicate"),
            ("C", "2026-11-01T01:30:00Z", 500.0, "deduplicated"),
            ("C", "2026-11-01T02:00:00Z", 13.0),
        ],
    )
    # WHEN readings become intervals
    result = reads.transform(usage.to_intervals(comps, USAGE, BASELINE_START))
    # THEN the used readings are differenced with each other only; the others keep their
    # rows, with no interval
    intervals = expected_amounts(
        spark,
        [
            ("C", "2026-11-01T00:00", "2026-11-01T01:00", 1.0, 0.0, False),
            ("C", "2026-11-01T01:00", "2026-11-01T02:00", 2.0, 0.0, False),
        ],
    )
    assert_approx_df_equality(
        amounts(result.transform(intervals_only)), intervals, 1e-9, ignore_nullable=True
    )
    others = result.where(F.col("start").isNull()).select("status").orderBy("status")
    assert [row["status"] for row in others.collect()] == [
        "conflicting_duplicate",
        "deduplicated",
        "used",
    ]


def test_only_the_last_valid_reading_before_the_baseline_opens_it(spark: SparkSession) -> None:
    # GIVEN a register read three times before B (which starts 11-01) and twice in it, the
    # latest read before B being a rejected one, and one copy of an earlier read
    comps = components(spark, [("C", "D1", "IMPORT_KWH", "CUMULATIVE", 60, None)])
    reads = readings(
        spark,
        [
            ("C", "2026-10-31T22:00:00Z", 7.0),
            ("C", "2026-10-31T22:00:00Z", 7.0, "deduplicated"),
            ("C", "2026-10-31T23:00:00Z", 9.0),
            ("C", "2026-10-31T23:30:00Z", 1.0, "negative_value"),
            ("C", "2026-11-01T00:00:00Z", 10.0),
            ("C", "2026-11-01T01:00:00Z", 12.0),
        ],
    )
    # WHEN readings become intervals
    result = reads.transform(usage.to_intervals(comps, USAGE, datetime(2026, 11, 1, tzinfo=UTC)))
    # THEN the 23:00 read opens B's first interval (it has none of its own), the earlier
    # valid read is outside the window, and the others keep their status
    intervals = expected_amounts(
        spark,
        [
            ("C", "2026-10-31T23:00", "2026-11-01T00:00", 1.0, 0.0, False),
            ("C", "2026-11-01T00:00", "2026-11-01T01:00", 2.0, 0.0, False),
        ],
    )
    assert_approx_df_equality(
        amounts(result.transform(intervals_only)), intervals, 1e-9, ignore_nullable=True
    )
    statuses = result.orderBy("measured_at", "status").select(
        F.date_format("measured_at", "dd'T'HH:mm").alias("at"), "status", "contiguous"
    )
    assert [tuple(row) for row in statuses.collect()] == [
        ("31T22:00", "deduplicated", False),
        ("31T22:00", "outside_window", False),
        ("31T23:00", "used", False),
        ("31T23:30", "negative_value", False),
        ("01T00:00", "used", False),
        ("01T01:00", "used", True),
    ]


def test_a_reading_that_is_not_used_neither_breaks_nor_extends_a_zero_run(
    spark: SparkSession,
) -> None:
    # GIVEN hourly zero import 00-04 with a rejected reading stamped 02:30 among them
    comps = components(spark, [("C", "D1", "IMPORT_KWH", "INTERVAL", 60, None)])
    rows = [("C", f"2026-11-01T{h:02d}:00:00Z", 0.0) for h in range(1, 5)]
    rows += [("C", "2026-11-01T02:30:00Z", 7.0, "negative_value")]
    # WHEN zero runs are marked
    result = (
        readings(spark, rows)
        .transform(usage.to_intervals(comps, USAGE, BASELINE_START))
        .transform(usage.mark_zero_runs(USAGE))
    )
    # THEN the run is the four hours
    assert result.agg(F.max("zero_run_minutes")).first()[0] == 240.0


def test_zero_runs_end_at_midnight(spark: SparkSession) -> None:
    # GIVEN hourly zero import from 22:00 to 02:00 the next day
    comps = components(spark, [("C", "D1", "IMPORT_KWH", "INTERVAL", 60, None)])
    rows = [("C", f"2026-11-01T{h:02d}:00:00Z", 0.0) for h in (23,)]
    rows += [("C", f"2026-11-02T{h:02d}:00:00Z", 0.0) for h in (0, 1, 2)]
    # WHEN zero runs are marked
    result = (
        readings(spark, rows)
        .transform(usage.to_intervals(comps, USAGE, BASELINE_START))
        .transform(usage.mark_zero_runs(USAGE))
    )
    # THEN each day keeps its own part: two hours on 11-01, two on 11-02
    runs = {
        (r["start"].date().isoformat(), r["zero_run_minutes"])
        for r in result.where(F.col("start").isNotNull()).collect()
    }
    assert max(m for d, m in runs if d == "2026-11-01") == 120.0
    assert max(m for d, m in runs if d == "2026-11-02") == 120.0


def test_ledger_counts_every_reading_once_and_keeps_each_reject(spark: SparkSession) -> None:
    # GIVEN a register with a 48-hour gap, two identical rejected readings, one other reject,
    # and a duplicate copy
    comps = components(spark, [("C", "D1", "IMPORT_KWH", "CUMULATIVE", 60, None)])
    periods = spark.createDataFrame(
        [("E1", "D1", "SP1", None, None, "RESIDENTIAL", False)], INSTALL_SCHEMA
    ).withColumn("installed_at", F.lit("2026-01-01T00:00:00Z").cast("timestamp"))
    reads = readings(
        spark,
        [
            ("C", "2026-11-01T12:00:00Z", 0.0),
            ("C", "2026-11-03T12:00:00Z", 48.0),
            ("C", "2026-11-02T00:00:00Z", 3.0, "deduplicated"),
        ],
    ).unionByName(
        spark.createDataFrame(
            [
                ("C", None, None, "bad_timestamp", '{"a": 1}'),
                ("C", None, None, "bad_timestamp", '{"a": 1}'),
                ("X", None, None, "unknown_component", '{"b": 2}'),
            ],
            (
                "measuring_component_id string, measured_at timestamp, value double, "
                "status string, record string"
            ),
        )
    )
    # WHEN the readings are folded into the ledger
    ledger = (
        reads.transform(usage.to_intervals(comps, USAGE, BASELINE_START))
        .transform(usage.mark_zero_runs(USAGE))
        .transform(usage.attach_installs(periods))
        .transform(usage.split_by_day)
        .transform(usage.by_day)
    )
    # THEN the gap reading counts once though it spreads over three days, the opening read
    # counts as used, and the identical rejects stay two
    result = ledger.select("device_id", "day", "status", "record", "readings", "import_kwh")
    expected = spark.createDataFrame(
        [
            (None, None, "bad_timestamp", '{"a": 1}', 2, None),
            (None, None, "deduplicated", None, 1, None),
            (None, None, "unknown_component", '{"b": 2}', 1, None),
            (None, None, "used", None, 1, None),
            ("D1", date(2026, 11, 1), "used", None, 1, 12.0),
            ("D1", date(2026, 11, 2), "used", None, 0, 24.0),
            ("D1", date(2026, 11, 3), "used", None, 0, 12.0),
        ],
        (
            "device_id string, day date, status string, record string, readings bigint, "
            "import_kwh double"
        ),
    )
    assert_approx_df_equality(
        result.orderBy("device_id", "day", "status"), expected, 1e-9, ignore_nullable=True
    )


def test_a_chain_of_readings_begun_before_the_read_range_gives_the_ranges_ledger(
    spark: SparkSession,
) -> None:
    # GIVEN a run (L 11-01, B from 11-02, W 11-04..11-05) and three components: I silent from
    # before L until B (its gap is no interval of the range), J with three readings in the
    # look-back day (one opens B, two are outside_window), K an hourly INTERVAL meter
    window = RunWindow(date(2026, 11, 5), 2, 2, 1)
    comps = components(
        spark,
        [
            ("I", "D1", "IMPORT_KWH", "CUMULATIVE", 60, None),
            ("J", "D2", "IMPORT_KWH", "CUMULATIVE", 60, None),
            ("K", "D3", "IMPORT_KWH", "INTERVAL", 60, None),
        ],
    )
    hours = [f"2026-11-{d:02d}T{h:02d}:00:00Z" for d in range(2, 6) for h in range(24)]
    rows = [("I", "2026-10-28T10:00:00Z", 100.0)]
    rows += [
        ("I", at, 150.0 + min(n, 30) + max(n - 36, 0)) for n, at in enumerate(hours[5:])
    ]  # a zero run
    rows += [("J", f"2026-11-01T{h}:00:00Z", 10.0 + h) for h in (20, 21, 22)]
    rows += [("J", at, 40.0 + n) for n, at in enumerate(hours)]
    rows += [("K", "2026-11-01T23:00:00Z", 2.0)] + [
        ("K", at, float(n % 3)) for n, at in enumerate(hours)
    ]
    periods = spark.createDataFrame(
        [(f"E{d}", f"D{d}", "SP", None, None, "RESIDENTIAL", False) for d in (1, 2, 3)],
        INSTALL_SCHEMA,
    ).withColumn("installed_at", F.lit("2026-11-03T12:00:00Z").cast("timestamp"))
    in_range = F.col("measured_at") >= F.lit(window.read_start)
    # WHEN the ledger comes from one chain of all readings, begun long before L (as stored
    # days continue from each other), of the rows the range's days hold
    chained = (
        readings(spark, rows)
        .transform(usage.readings_rows(comps, periods, USAGE, datetime(2026, 10, 1, tzinfo=UTC)))
        .where(F.col(usage.READING_DAY) >= window.read_start_date)
        .transform(usage.run_ledger(window))
    )
    # THEN its daily usage and its readings by status are those of a run that reads only its range
    alone = (
        readings(spark, rows)
        .where(in_range)
        .transform(usage.to_intervals(comps, USAGE, window.baseline_start))
        .transform(usage.mark_zero_runs(USAGE))
        .transform(usage.attach_installs(periods))
        .transform(usage.split_by_day)
        .transform(usage.by_day)
    )
    assert_df_equality(
        chained.transform(usage.daily_usage(window)),
        alone.transform(usage.daily_usage(window)),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    by_status = [F.col("status"), F.sum("readings").alias("readings")]
    assert_df_equality(
        chained.groupBy(by_status[0]).agg(by_status[1]),
        alone.groupBy(by_status[0]).agg(by_status[1]),
        ignore_row_order=True,
    )
    statuses = {
        (r["status"], r["readings"]) for r in chained.where(F.col("day").isNull()).collect()
    }
    assert statuses == {("used", 3), ("outside_window", 2)}  # J's and I's and K's opening reads
