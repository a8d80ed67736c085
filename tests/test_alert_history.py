"""History of alerts across run dates, on tiny prior outputs written in the test."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from conftest import SAMPLE_RUN_STARTED_AT, write_job_config
from pyspark.sql import DataFrame, SparkSession

from dependencies.publish import commit_table, partition_path, read_published
from jobs import datalake_job, ledger
from jobs.alerts import history as alert_history
from jobs.report import tallies

RUN_DATE = date(2026, 11, 15)
HISTORY_SCHEMA = "device_id string, first_alerted_on date, runs_alerted int"


def publish_alerts(
    spark: SparkSession, output: Path, run_date: date, rows: list[tuple], complete: bool = True
) -> None:
    """Write ``run_date``'s published alerts (device, first alerted on, runs), and its
    report unless the run is incomplete."""
    frame = spark.createDataFrame(rows, HISTORY_SCHEMA)
    commit_table(frame, str(output), "alerts", run_date)
    if complete:
        report = Path(partition_path(str(output), "reports", run_date))
        report.mkdir(parents=True)
        (report / "report.json").write_text(json.dumps({"run_date": run_date.isoformat()}))


def todays(spark: SparkSession, *devices: str) -> DataFrame:
    return spark.createDataFrame([(d, 0.9) for d in devices], "device_id string, score double")


def summarized(previous: alert_history.PreviousRun, alerts: DataFrame) -> dict[str, Any]:
    """The report's ``history`` of ``alerts``, its counts made as the report makes them."""
    return alert_history.summary(previous, tallies(alert_history.summary_tallies(previous, alerts)))


def test_continuing_new_and_cleared(spark: SparkSession, tmp_path: Path) -> None:
    # GIVEN 11-14 complete, alerting A (since 11-10, 4 runs) and C (since 11-14)
    publish_alerts(
        spark,
        tmp_path,
        date(2026, 11, 14),
        [("A", date(2026, 11, 10), 4), ("C", date(2026, 11, 14), 1)],
    )
    # WHEN 11-15 alerts A and B
    previous = alert_history.previous_run(spark, str(tmp_path), RUN_DATE, 7)
    alerts = todays(spark, "A", "B").transform(alert_history.with_history(previous, RUN_DATE))
    # THEN A continues (5 runs since 11-10), B is new, C cleared
    expected = spark.createDataFrame(
        [("A", 0.9, "continuing", date(2026, 11, 10), 5), ("B", 0.9, "new", RUN_DATE, 1)],
        "device_id string, score double, status string, first_alerted_on date, runs_alerted int",
    )
    assert_df_equality(alerts.orderBy("device_id"), expected, ignore_nullable=True)
    assert summarized(previous, alerts) == {
        "previous_run_date": "2026-11-14",
        "new": 1,
        "continuing": 1,
        "cleared": 1,
        "cleared_devices": ["C"],
    }


def test_the_latest_complete_date_within_the_look_back(spark: SparkSession, tmp_path: Path) -> None:
    # GIVEN 11-10 complete (A), 11-12 incomplete (B: alerts without report), 11-15 itself
    # complete (C: an earlier run of the same date) and 11-16 complete (D)
    publish_alerts(spark, tmp_path, date(2026, 11, 10), [("A", date(2026, 11, 9), 2)])
    publish_alerts(
        spark, tmp_path, date(2026, 11, 12), [("B", date(2026, 11, 12), 1)], complete=False
    )
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
    assert summarized(none, alerts) == {
        "previous_run_date": None,
        "new": 1,
        "continuing": 0,
        "cleared": 0,
        "cleared_devices": [],
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
HISTORY_COLUMNS = ("status", "first_alerted_on", "runs_alerted")


def published_run(spark: SparkSession, output: Path, run_date: date) -> dict[str, Any]:
    """``run_date``'s published alerts (by device) and its report's history."""
    alerts = read_published(spark, str(output), "alerts", run_date)
    report = Path(partition_path(str(output), "reports", run_date)) / "report.json"
    return {
        "alerts": {r["device_id"]: r.asDict() for r in alerts.collect()},
        "history": json.loads(report.read_text())["history"],
    }


@pytest.fixture(scope="module")
def consecutive_runs(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory, sample_published: Path
) -> dict[str, Any]:
    """One output where 11-15 was already published (a copy of the suite's run of the
    sample, ``sample_published``: the default config, the same run instant), then 11-14 ran
    with a lower alert threshold (so that it also alerts N01), then 11-15 ran again with the
    default one; each run's alerts and history."""
    root = tmp_path_factory.mktemp("history")
    output = root / "output"
    # the published tables only: the readings' ledger store is a cache ("_ledger")
    shutil.copytree(sample_published, output, ignore=shutil.ignore_patterns(ledger.STORE))
    configs = {
        "lenient": write_job_config(root, {"alert_threshold": 0.3}, "lenient_config.json"),
        "default": write_job_config(root, None, "default_config.json"),
    }
    runs: dict[str, Any] = {"earlier": published_run(spark, output, RUN_DATE)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datalake_job, "run_start_instant", lambda: SAMPLE_RUN_STARTED_AT)
        for name, config, run_date in (
            ("first", "lenient", "2026-11-14"),
            ("rerun", "default", "2026-11-15"),
        ):
            assert (
                datalake_job.main(["--config", str(configs[config]), "--run-date", run_date]) == 0
            )
            runs[name] = published_run(spark, output, date.fromisoformat(run_date))
    return runs


def test_a_new_alert_continues_the_next_day(consecutive_runs: dict[str, Any]) -> None:
    # GIVEN 11-14 alerted the sample's 10 planted devices and N01, all new (11-15's earlier
    # publication, a later date, is not a previous run of 11-14)
    first = consecutive_runs["first"]["alerts"]
    assert sorted(first) == sorted([*SAMPLE_ALERTS, "N01"])
    assert {(a["status"], a["first_alerted_on"], a["runs_alerted"]) for a in first.values()} == {
        ("new", date(2026, 11, 14), 1)
    }
    # WHEN 11-15 runs (again) THEN its 10 alerts continue from 11-14, and N01 is cleared
    rerun = consecutive_runs["rerun"]
    assert {
        d: (a["status"], a["first_alerted_on"], a["runs_alerted"])
        for d, a in rerun["alerts"].items()
    } == {d: ("continuing", date(2026, 11, 14), 2) for d in SAMPLE_ALERTS}
    assert rerun["history"] == {
        "previous_run_date": "2026-11-14",
        "new": 0,
        "continuing": 10,
        "cleared": 1,
        "cleared_devices": ["N01"],
    }


def test_a_rerun_gives_the_same_history(consecutive_runs: dict[str, Any]) -> None:
    # GIVEN 11-15 published before 11-14 ran: its 10 alerts all new, no previous run
    earlier = consecutive_runs["earlier"]
    assert {
        (a["status"], a["first_alerted_on"], a["runs_alerted"]) for a in earlier["alerts"].values()
    } == {("new", RUN_DATE, 1)}
    assert earlier["history"]["previous_run_date"] is None
    # WHEN 11-15 is run again THEN its history is the one a first run after 11-14 gets (the
    # test above: its own earlier publication is not its previous run, nor counted) and the
    # rest of each alert is what the earlier run published
    rerun = consecutive_runs["rerun"]
    assert rerun["history"]["previous_run_date"] == "2026-11-14"
    without_history = {
        name: {
            d: {k: v for k, v in a.items() if k not in HISTORY_COLUMNS}
            for d, a in run["alerts"].items()
        }
        for name, run in consecutive_runs.items()
    }
    assert without_history["rerun"] == without_history["earlier"]
