"""History of alerts across run dates, on tiny prior outputs written in the test."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from conftest import write_job_config
from pyspark.sql import DataFrame, SparkSession

from dependencies.publish import partition_path
from jobs import alert_history, datalake_job

RUN_DATE = date(2026, 11, 15)
HISTORY_SCHEMA = "device_id string, first_alerted_on date, runs_alerted int"


def publish_alerts(spark: SparkSession, output: Path, run_date: date, rows: list[tuple],
                   complete: bool = True) -> None:
    """Write ``run_date``'s published alerts (device, first alerted on, runs), and its
    report unless the run is incomplete."""
    frame = spark.createDataFrame(rows, HISTORY_SCHEMA)
    frame.write.parquet(partition_path(str(output), "alerts", run_date))
    if complete:
        report = Path(partition_path(str(output), "reports", run_date))
        report.mkdir(parents=True)
        (report / "report.json").write_text(json.dumps({"run_date": run_date.isoformat()}))


def todays(spark: SparkSession, *devices: str) -> DataFrame:
    return spark.createDataFrame([(d, 0.9) for d in devices], "device_id string, score double")


def test_continuing_new_and_cleared(spark: SparkSession, tmp_path: Path) -> None:
    # GIVEN 11-14 complete, alerting A (since 11-10, 4 runs) and C (since 11-14)
    publish_alerts(spark, tmp_path, date(2026, 11, 14),
                   [("A", date(2026, 11, 10), 4), ("C", date(2026, 11, 14), 1)])
    # WHEN 11-15 alerts A and B
    previous = alert_history.previous_run(spark, str(tmp_path), RUN_DATE, 7)
    alerts = todays(spark, "A", "B").transform(alert_history.with_history(previous, RUN_DATE))
    # THEN A continues (5 runs since 11-10), B is new, C cleared
    expected = spark.createDataFrame(
        [("A", 0.9, "continuing", date(2026, 11, 10), 5), ("B", 0.9, "new", RUN_DATE, 1)],
        "device_id string, score double, status string, first_alerted_on date, runs_alerted int",
    )
    assert_df_equality(alerts.orderBy("device_id"), expected, ignore_nullable=True)
    assert alert_history.summary(previous, alerts) == {
        "previous_run_date": "2026-11-14", "new": 1, "continuing": 1, "cleared": 1, "cleared_devices": ["C"],
    }


def test_the_latest_complete_date_within_the_look_back(spark: SparkSession, tmp_path: Path) -> None:
    # GIVEN 11-10 complete (A), 11-12 incomplete (B: alerts without report), 11-15 itself
    # complete (C: an earlier run of the same date) and 11-16 complete (D)
    publish_alerts(spark, tmp_path, date(2026, 11, 10), [("A", date(2026, 11, 9), 2)])
    publish_alerts(spark, tmp_path, date(2026, 11, 12), [("B", date(2026, 11, 12), 1)], complete=False)
    publish_alerts(spark, tmp_path, RUN_DATE, [("C", RUN_DATE, 1)])
    publish_alerts(spark, tmp_path, date(2026, 11, 16), [("D", date(2026, 11, 16), 1)])
    # WHEN 11-15 looks back 5 days THEN 11-10 is its previous run, with A
    previous = alert_history.previous_run(spark, str(tmp_path), RUN_DATE, 5)
    assert previous.run_date == date(2026, 11, 10)
    assert [r["device_id"] for r in previous.alerts.collect()] == ["A"]
    # ... but 4 days do not reach it: no previous run, every alert new
    none = alert_history.previous_run(spark, str(tmp_path), RUN_DATE, 4)
    assert none == alert_history.PreviousRun(None, None)
    alerts = todays(spark, "A").transform(alert_history.with_history(none, RUN_DATE))
    assert [(r["status"], r["first_alerted_on"], r["runs_alerted"]) for r in alerts.collect()] == [
        ("new", RUN_DATE, 1)
    ]
    assert alert_history.summary(none, alerts) == {
        "previous_run_date": None, "new": 1, "continuing": 0, "cleared": 0, "cleared_devices": [],
    }


def test_alerts_published_before_history_existed_start_at_their_date(spark: SparkSession) -> None:
    # GIVEN 11-14's alerts without history columns
    published = spark.createDataFrame([("A", 0.7)], "device_id string, score double")
    # WHEN their history is read THEN A was first alerted then, once
    history = alert_history.history_of(published, date(2026, 11, 14))
    expected = spark.createDataFrame([("A", date(2026, 11, 14), 1)], HISTORY_SCHEMA)
    assert_df_equality(history, expected, ignore_nullable=True)


# --- End to end: two consecutive run dates of tests/test_data ---------------------------------

SAMPLE_ALERTS = ["D01", "F01", "G01", "H02", "H05", "H06", "K01", "P01", "T01", "Z01"]


@pytest.fixture(scope="module")
def consecutive_runs(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """11-14 run with a lower alert threshold (so that it also alerts N01), then
    11-15 with the default one, twice, into one output; each run's alerts and history."""
    root = tmp_path_factory.mktemp("history")
    configs = {
        "lenient": write_job_config(root, {"alert_threshold": 0.3}, "lenient_config.json"),
        "default": write_job_config(root, None, "default_config.json"),
    }
    runs: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as patch:  # the sample's last reading is 2026-11-16T00:00Z
        patch.setattr(datalake_job, "run_start_instant", lambda: datetime(2026, 11, 16, 6, tzinfo=UTC))
        for name, config, run_date in (("first", "lenient", "2026-11-14"), ("second", "default", "2026-11-15"),
                                       ("rerun", "default", "2026-11-15")):
            assert datalake_job.main(["--config", str(configs[config]), "--run-date", run_date]) == 0
            output = str(root / "output")
            alerts = spark.read.parquet(
                partition_path(output, "alerts", date.fromisoformat(run_date))
            )
            report = Path(partition_path(output, "reports", date.fromisoformat(run_date))) / "report.json"
            runs[name] = {
                "alerts": {r["device_id"]: r.asDict() for r in alerts.collect()},
                "history": json.loads(report.read_text())["history"],
            }
    return runs


def test_a_new_alert_continues_the_next_day(consecutive_runs: dict[str, Any]) -> None:
    # GIVEN 11-14 alerted the sample's 10 planted devices and N01 (all new)
    first = consecutive_runs["first"]["alerts"]
    assert sorted(first) == sorted([*SAMPLE_ALERTS, "N01"])
    assert {(a["status"], a["first_alerted_on"], a["runs_alerted"]) for a in first.values()} == {
        ("new", date(2026, 11, 14), 1)
    }
    # WHEN 11-15 runs THEN its 10 alerts continue from 11-14, and N01 is cleared
    second = consecutive_runs["second"]
    assert {d: (a["status"], a["first_alerted_on"], a["runs_alerted"]) for d, a in second["alerts"].items()} == {
        d: ("continuing", date(2026, 11, 14), 2) for d in SAMPLE_ALERTS
    }
    assert second["history"] == {
        "previous_run_date": "2026-11-14", "new": 0, "continuing": 10, "cleared": 1,
        "cleared_devices": ["N01"],
    }


def test_a_rerun_gives_the_same_history(consecutive_runs: dict[str, Any]) -> None:
    # GIVEN 11-15 run twice WHEN compared THEN the alerts and the history are the same
    assert consecutive_runs["rerun"] == consecutive_runs["second"]
