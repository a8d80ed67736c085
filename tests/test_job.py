"""End to end on tests/test_data: the job's outputs, row by row, and the usage they rest on."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from chispa import assert_approx_df_equality
from conftest import MAX_SAMPLE_SPARK_JOBS
from make_test_data import EXPECTED_RULES
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from dependencies.config import bundled_defaults
from dependencies.publish import read_published
from dependencies.run_window import RunWindow
from jobs import usage
from jobs.inputs import extract, readings_inputs, validate_tables
from jobs.ledger import unstored_ledger
from jobs.report import tallies

RUN_DATE = date(2026, 11, 15)
W_START, W_END = date(2026, 11, 2), RUN_DATE
# The timed stages of a run, as the job's story tells them.
STAGES = ("extract", "validate", "usage", "detect", "score", "publish")


def test_every_rule_fires_on_exactly_the_meters_planted_for_it(
    spark: SparkSession, sample_published: Path
) -> None:
    # GIVEN the sample's planted meters WHEN the job runs THEN findings match them exactly
    findings = spark.read.format("delta").load(str(sample_published / "findings"))
    found: dict[str, list[str]] = {}
    for row in findings.orderBy("device_id", "rule").collect():
        found.setdefault(row["device_id"], []).append(row["rule"])
    assert found == EXPECTED_RULES
    assert {r["run_date"] for r in findings.select("run_date").distinct().collect()} == {RUN_DATE}


def test_event_findings_carry_hand_checked_metrics(
    spark: SparkSession, sample_published: Path
) -> None:
    findings = (
        spark.read.format("delta")
        .load(str(sample_published / "findings"))
        .where(
            F.col("rule").isin(
                "UNINSTALLED_CONSUMPTION",
                "REGISTER_ROLLBACK",
                "REVERSE_FLOW",
                "TAMPER_EVENTS",
                "ZERO_CONSUMPTION",
                "ZERO_RUNS",
                "DATA_GAP",
            )
        )
        .select(
            "device_id",
            "service_point_id",
            "rule",
            "weight",
            "metric",
            "window_start",
            "window_end",
        )
    )
    expected = spark.createDataFrame(
        [
            # G01 removed on 11-05 keeps drawing 10 kWh a day for 11 days of W
            ("G01", "SP-G01", "UNINSTALLED_CONSUMPTION", 1.0, 110.0),
            # K01 wound back by 5 kWh at 12:00, in an hour that used 0.2: the read falls 4.8
            ("K01", "SP-K01", "REGISTER_ROLLBACK", 0.9, 4.8),
            # F01 exports 0.6 kWh a day for 14 days without generation
            ("F01", "SP-F01", "REVERSE_FLOW", 0.8, 8.4),
            # T01's counter stepped by 2
            ("T01", "SP-T01", "TAMPER_EVENTS", 0.7, 2.0),
            # Z01: 8 days of nothing, each a 24 h zero run
            ("Z01", "SP-Z01", "ZERO_CONSUMPTION", 0.6, 8.0),
            ("Z01", "SP-Z01", "ZERO_RUNS", 0.5, 8.0),
            # H02: 01:00-05:00 off on all 14 days of W
            ("H02", "SP-H02", "ZERO_RUNS", 0.5, 14.0),
            # N01 reported 96 of W's 336 hours
            ("N01", "SP-N01", "DATA_GAP", 0.3, 96 / 336),
        ],
        "device_id string, service_point_id string, rule string, weight double, metric double",
    ).select("*", F.lit(W_START).alias("window_start"), F.lit(W_END).alias("window_end"))
    assert_approx_df_equality(
        findings.orderBy("device_id", "rule"),
        expected.orderBy("device_id", "rule"),
        1e-6,
        ignore_nullable=True,
    )


def test_alerts_row_by_row(spark: SparkSession, sample_published: Path) -> None:
    alerts = spark.read.format("delta").load(str(sample_published / "alerts")).drop("run_date")
    # kWh at stake (W: 14 days; expected import 10 kWh a day, the residential drift being 1):
    # G01 110 uninstalled; Z01 8 days x 10 missing; D01 14 x 5; F01 8.4 reversed; H02 4 h x
    # 0.2 x 14 days; K01 4.8 wound back; H05, T01, H06 nothing measurable (timing, events).
    expected = spark.createDataFrame(
        [
            ("G01", "SP-G01", "RESIDENTIAL", 1.0, ["UNINSTALLED_CONSUMPTION"], 110.0, 1),
            # Z01's drop findings are explained: its last three days are back at its level
            # (DROP_ENDED); the zero days alone score 1 - 0.4 x 0.5
            ("Z01", "SP-Z01", "RESIDENTIAL", 0.8, ["ZERO_CONSUMPTION", "ZERO_RUNS"], 80.0, 2),
            (
                "D01",
                "SP-D01",
                "RESIDENTIAL",
                1 - 0.4 * 0.6 * 0.5,
                ["CONSUMPTION_DROP", "PEER_DEVIATION", "SUSTAINED_DROP"],
                70.0,
                3,
            ),
            (
                "P01",
                "SP-P01",
                "RESIDENTIAL",
                1 - 0.6 * 0.5,
                ["PEER_DEVIATION", "SUSTAINED_DROP"],
                36.4,
                4,
            ),
            ("F01", "SP-F01", "RESIDENTIAL", 0.8, ["REVERSE_FLOW"], 8.4, 5),
            ("H02", "SP-H02", "RESIDENTIAL", 0.5, ["ZERO_RUNS"], 11.2, 6),
            ("K01", "SP-K01", "RESIDENTIAL", 0.9, ["REGISTER_ROLLBACK"], 4.8, 7),
            ("H05", "SP-H05", "RESIDENTIAL", 0.75, ["FLAT_PROFILE", "PROFILE_SHIFT"], 0.0, 8),
            ("T01", "SP-T01", "RESIDENTIAL", 0.7, ["TAMPER_EVENTS"], 0.0, 9),
            ("H06", "SP-H06", "RESIDENTIAL", 0.5, ["PROFILE_SHIFT"], 0.0, 10),
        ],
        "device_id string, service_point_id string, customer_class string, score double, "
        "rules array<string>, estimated_unbilled_kwh double, rank int",
    ).select(
        "device_id",
        "service_point_id",
        "customer_class",
        "score",
        "rules",
        F.lit(W_START).alias("window_start"),
        F.lit(W_END).alias("window_end"),
        "estimated_unbilled_kwh",
        (F.col("estimated_unbilled_kwh") * 0.30).alias("estimated_value"),
        F.lit("EUR").alias("currency"),
        (F.col("score") * F.col("estimated_unbilled_kwh") * 0.30).alias("priority"),
        "rank",
        F.lit("new").alias("status"),
        F.lit(RUN_DATE).alias("first_alerted_on"),
        F.lit(1).alias("runs_alerted"),
    )
    # N01 (data gap only, 0.3) stays below the threshold.
    # Published in rank order; the first run of the output: every alert is new.
    assert_approx_df_equality(alerts, expected, 1e-6, ignore_nullable=True)


def test_evidence_of_an_alerted_device(spark: SparkSession, sample_published: Path) -> None:
    evidence = read_published(spark, str(sample_published), "evidence", date(2026, 11, 15))
    # GIVEN the sample's 10 alerts THEN each has a row for each of the 42 days of B and W
    assert evidence.count() == 10 * 42
    assert [
        r["rank"] for r in evidence.select("rank").distinct().orderBy("rank").collect()
    ] == list(range(1, 11))
    # Z01: nothing on 11-05..11-12, its normal 10 kWh on the other days; expected 10 a day
    z01 = evidence.where(F.col("device_id") == "Z01").orderBy("day").collect()
    assert [(r["day"], r["period"], r["import_kwh"], r["has_data"]) for r in z01[30:33]] == [
        (date(2026, 11, 4), "window", pytest.approx(10.0), True),
        (date(2026, 11, 5), "window", 0.0, True),
        (date(2026, 11, 6), "window", 0.0, True),
    ]
    assert z01[0]["period"] == "baseline"
    assert z01[0]["day"] == date(2026, 10, 5)
    assert [r["expected_daily_kwh"] for r in z01] == pytest.approx([10.0] * 42)
    assert all(r["export_kwh"] is None for r in z01)  # no export register
    # its hourly profile: the sample's over B, 6 of 14 days of it over W
    profile = [
        0.2 + (0.6 if 7 <= h < 9 else 0.0) + (1.0 if 18 <= h < 22 else 0.0) for h in range(24)
    ]
    assert z01[0]["baseline_hourly_kwh"] == pytest.approx(profile)
    assert z01[0]["window_hourly_kwh"] == pytest.approx([v * 6 / 14 for v in profile])
    found = {f["rule"]: f["metric"] for f in z01[0]["findings"]}
    assert sorted(found) == [
        "CONSUMPTION_DROP",
        "PEER_DEVIATION",
        "SUSTAINED_DROP",
        "ZERO_CONSUMPTION",
        "ZERO_RUNS",
    ]
    assert (found["CONSUMPTION_DROP"], found["ZERO_CONSUMPTION"], found["ZERO_RUNS"]) == (
        pytest.approx(6 / 14),
        8.0,
        8.0,
    )


def test_report_counts_reconcile_and_name_every_rule(sample_published: Path) -> None:
    report = json.loads(
        (sample_published / "reports" / "run_date=2026-11-15" / "report.json").read_text()
    )
    measurements = report["counts"]["measurements"]
    # 38 hourly registers read 23 hours of 10-04 they do not need (the 23:00 read opens B);
    # the hourly INTERVAL meter R21 reads 22 (its reads up to 10-04T23:00 lie before B).
    assert measurements == {
        "read": 40400,
        "used": 40400 - 896,
        "rejected": 0,
        "deduplicated": 0,
        "outside_window": 38 * 23 + 22,
        "rejected_by_reason": {},
    }
    assert report["counts"]["device"]["used"] == report["counts"]["device"]["read"] == 39
    assert report["findings_by_rule"] == {
        "UNINSTALLED_CONSUMPTION": 1,
        "REGISTER_ROLLBACK": 1,
        "REVERSE_FLOW": 1,
        "TAMPER_EVENTS": 1,
        "ZERO_CONSUMPTION": 1,
        "CONSUMPTION_DROP": 2,
        "ZERO_RUNS": 2,
        "FLAT_PROFILE": 1,
        "PROFILE_SHIFT": 2,
        "PEER_DEVIATION": 3,
        "SUSTAINED_DROP": 3,
        "DATA_GAP": 1,
    }
    assert report["alerts"] == 10
    assert report["component_types"] == {"EXPORT_KWH": 2, "IMPORT_KWH": 39, "TAMPER_COUNT": 1}
    assert report["parameters"]["window_start"] == "2026-11-02"
    assert report["spark_application_id"]
    assert report["history"] == {
        "previous_run_date": None,
        "new": 10,
        "continuing": 0,
        "cleared": 0,
        "cleared_devices": [],
    }
    assert (sample_published / "reports" / "run_date=2026-11-15" / "alerts.html").is_file()


def test_daily_usage_of_the_sample(spark: SparkSession) -> None:
    # GIVEN the sample, validated
    window = RunWindow.from_config(RUN_DATE, bundled_defaults())
    raw = extract(spark, {"path": "tests/test_data", "format": "csv"}, window)
    started_at = datetime(2026, 11, 20, tzinfo=UTC)
    readings = readings_inputs(
        validate_tables(raw, window), bundled_defaults()["usage"], window, started_at
    )
    # WHEN usage is computed
    ledger = unstored_ledger(readings)
    daily = ledger.transform(usage.daily_usage(window))
    picked = daily.where(
        F.concat_ws("@", "device_id", F.col("day").cast("string")).isin(
            "R02@2026-10-10",
            "R01@2026-10-23",
            "R21@2026-10-05",
            "GAP1@2026-11-08",
            "GAP1@2026-11-09",
            "GAP1@2026-11-10",
            "R23@2026-10-20",
            "R23@2026-10-21",
            "G01@2026-11-06",
        )
    ).select(
        "device_id",
        "day",
        "import_kwh",
        "uninstalled_import_kwh",
        "present_intervals",
        F.date_format("latest_installed_start", "MM-dd'T'HH:mm").alias("latest_installed_start"),
    )
    # THEN each day holds the hand-computed kWh (profile: 10 kWh a day x the meter's scale)
    expected = spark.createDataFrame(
        [
            ("G01", date(2026, 11, 6), 10.0, 10.0, 24, None),  # removed: all uninstalled
            ("GAP1", date(2026, 11, 8), 10.0, None, 24, "11-08T23:00"),
            (
                "GAP1",
                date(2026, 11, 9),
                10.0,
                None,
                0,
                "11-09T00:00",
            ),  # the 48 h gap, half each day
            ("GAP1", date(2026, 11, 10), 10.0, None, 0, "11-09T00:00"),
            ("R01", date(2026, 10, 23), 10.5, None, 24, "10-23T23:00"),  # across the rollover
            ("R02", date(2026, 10, 10), 11.0, None, 24, "10-10T23:00"),
            ("R21", date(2026, 10, 5), 11.0, None, 24, "10-05T23:00"),  # INTERVAL meter
            ("R23", date(2026, 10, 20), 3.6, 0.0, 24, "10-20T11:00"),  # removed at noon, then idle
            ("R23", date(2026, 10, 21), 0.0, 0.0, 24, None),
        ],
        "device_id string, day date, import_kwh double, uninstalled_import_kwh double, "
        "present_intervals bigint, latest_installed_start string",
    )
    assert_approx_df_equality(
        picked.orderBy("device_id", "day"), expected, 1e-6, ignore_nullable=True
    )


def test_a_run_of_the_sample_starts_a_bounded_number_of_spark_jobs(sample_published: Path) -> None:
    # GIVEN the report of a run of the sample
    report = json.loads(
        (sample_published / "reports" / "run_date=2026-11-15" / "report.json").read_text()
    )
    # THEN it counts the Spark jobs of every timed stage, the story's steps, and they stay
    # under the bound; extract and validate only plan (the tables' headers are read without
    # a job, their rows checked when the readings' pass reads them), every other stage runs
    # queries
    jobs = report["spark_jobs"]
    assert set(jobs) == set(report["durations_seconds"]) == set(STAGES)
    assert all(jobs[stage] > 0 for stage in STAGES if stage not in ("extract", "validate")), jobs
    assert sum(jobs.values()) <= MAX_SAMPLE_SPARK_JOBS, jobs


def test_tallies_count_rows_per_value_and_in_all_in_one_query(spark: SparkSession) -> None:
    # GIVEN a frame of three rows (two values) and an empty one
    frame = spark.createDataFrame([("a",), ("a",), ("b",)], "k string")
    empty = spark.createDataFrame([], "k string")
    # WHEN tallied by value and in all
    tally = tallies({"by_k": (frame, "k"), "rows": (frame, None), "none": (empty, None)})
    # THEN each name has its counts; an empty frame has none
    assert tally == {"by_k": {"a": 2, "b": 1}, "rows": {None: 3}, "none": {}}
