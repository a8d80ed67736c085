"""Publishing one run date as Delta tables: one commit per table, the report last; a re-run
replaces exactly its date, and a failed or killed run leaves the date reading as incomplete
until the next run publishes it whole."""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dependencies import publish as publishing
from dependencies.publish import (
    ORDER,
    TABLE_VERSIONS,
    latest_complete_run_date,
    partition_path,
    publish,
    read_published,
    stage_outputs,
    stage_report_page,
    staging_directory,
    table_path,
)

RUN_DATE = date(2026, 11, 15)
ONE_DAY = timedelta(days=1)
OTHER_DATE = date(2026, 11, 14)


def outputs(spark: SparkSession, version: str) -> dict[str, DataFrame]:
    """A tiny, recognisable set of outputs: every row carries ``version``."""
    return {
        "alerts": spark.createDataFrame(
            [(f"D-{version}", 0.9, 1)], "device_id string, score double, rank int"
        ),
        "findings": spark.createDataFrame(
            [(f"D-{version}", "ZERO_RUNS"), (f"D-{version}", "DATA_GAP")],
            "device_id string, rule string",
        ),
        "rejects": spark.createDataFrame(
            [("device", "missing_required", json.dumps({"version": version}))],
            "table string, reason string, record string",
        ),
        "evidence": spark.createDataFrame(
            [(f"D-{version}", 1, RUN_DATE)], "device_id string, rank int, day date"
        ),
    }


def stage(
    spark: SparkSession, frames: dict[str, DataFrame], output: Path, run_date: date, run_id: str
) -> str:
    """Stage ``frames`` as one run's outputs, publishing nothing; return its staging
    directory (gone once staging ends)."""
    with staging_directory(spark, str(output), run_date, run_id) as staging:
        stage_outputs(frames, staging)
    return staging


def run(
    spark: SparkSession, output: Path, version: str, run_date: date = RUN_DATE
) -> tuple[dict[str, str], dict[str, Any]]:
    """Stage and publish ``version``'s outputs for ``run_date``, as the job does; the
    published paths and report."""
    with staging_directory(spark, str(output), run_date, f"{run_date}-{version}") as staging:
        staged = stage_outputs(outputs(spark, version), staging)
        return publish(spark, staging, staged, {"version": version}, str(output), run_date)


def assert_published(
    spark: SparkSession, output: Path, version: str, run_date: date = RUN_DATE
) -> None:
    """``run_date``'s published outputs and report are exactly those of ``version``."""
    for table, expected in outputs(spark, version).items():
        actual = read_published(spark, str(output), table, run_date)
        assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    published = report(output, run_date)
    assert published is not None
    assert published["version"] == version
    assert set(published[TABLE_VERSIONS]) == set(ORDER)


def report(output: Path, run_date: date = RUN_DATE) -> dict[str, Any] | None:
    """The published report of ``run_date``, or None while the date reads as incomplete."""
    path = Path(partition_path(str(output), "reports", run_date)) / "report.json"
    return json.loads(path.read_text()) if path.exists() else None


def commits(spark: SparkSession, output: Path, table: str) -> list[str]:
    """The operations of ``table``'s Delta history, oldest first."""
    history = DeltaTable.forPath(spark, table_path(str(output), table)).history()
    return [row["operation"] for row in history.orderBy("version").collect()]


def assert_only_published_tables(output: Path) -> None:
    """The output path holds the published tables and nothing else (no ``_staging/``)."""
    assert sorted(entry.name for entry in output.iterdir()) == [
        "alerts",
        "evidence",
        "findings",
        "rejects",
        "reports",
    ]


def fail_commit(monkeypatch: pytest.MonkeyPatch, table: str, error: BaseException) -> None:
    """Make the commit of ``table`` raise ``error`` (the commits before it happen)."""
    real_commit = publishing.commit_table

    def commit(frame: DataFrame, output_path: str, name: str, run_date: date) -> None:
        if name == table:
            raise error
        real_commit(frame, output_path, name, run_date)

    monkeypatch.setattr(publishing, "commit_table", commit)


def test_rerun_replaces_only_its_run_date_in_one_commit_per_table(
    spark: SparkSession, tmp_path: Path
) -> None:
    # GIVEN run dates D (version v1) and D-1 (version other) published
    output = tmp_path / "output"
    run(spark, output, "v1")
    run(spark, output, "other", OTHER_DATE)

    # WHEN D is published again with version v2
    paths, published = run(spark, output, "v2")

    # THEN D holds exactly v2, D-1 is untouched, each table has one commit per run, and no
    # staging is left behind
    assert_published(spark, output, "v2")
    assert_published(spark, output, "other", OTHER_DATE)
    assert paths == {
        **{table: table_path(str(output), table) for table in ORDER},
        "reports": partition_path(str(output), "reports", RUN_DATE),
    }
    for table in ORDER:
        assert commits(spark, output, table) == ["WRITE", "WRITE", "WRITE"]
    assert_only_published_tables(output)
    # AND each report names the version of each table its run committed
    assert published == report(output)
    assert published[TABLE_VERSIONS] == dict.fromkeys(ORDER, 2)
    assert report(output, OTHER_DATE)[TABLE_VERSIONS] == dict.fromkeys(ORDER, 1)


def test_time_travel_reads_what_an_earlier_run_published(
    spark: SparkSession, tmp_path: Path
) -> None:
    # GIVEN D published as v1, then re-run as v2
    output = tmp_path / "output"
    _, first = run(spark, output, "v1")
    run(spark, output, "v2")

    # WHEN the alerts are read as of the version the first run's report names
    before = (
        spark.read.format("delta")
        .option("versionAsOf", first[TABLE_VERSIONS]["alerts"])
        .load(table_path(str(output), "alerts"))
        .where(F.col("run_date") == RUN_DATE)
        .drop("run_date")
    )

    # THEN they are v1's, while the latest version holds v2's
    expected = outputs(spark, "v1")["alerts"]
    assert_df_equality(before, expected, ignore_row_order=True, ignore_nullable=True)
    assert read_published(spark, str(output), "alerts", RUN_DATE).first()["device_id"] == "D-v2"


@pytest.mark.parametrize("error", [OSError("injected"), KeyboardInterrupt("killed")])
def test_an_interrupted_publish_leaves_the_date_incomplete_until_the_next_run(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    # GIVEN D-1 and D published as v1
    output = tmp_path / "output"
    run(spark, output, "v1", OTHER_DATE)
    run(spark, output, "v1")

    # WHEN a v2 run of D fails (or is killed) after committing its alerts, before its findings
    fail_commit(monkeypatch, "findings", error)
    with pytest.raises(type(error)):
        run(spark, output, "v2")
    monkeypatch.undo()

    # THEN D reads as incomplete (no report: readers of complete dates find D-1), D-1 is
    # untouched, every table is still readable, and nothing is left staged
    assert report(output) is None
    assert (
        latest_complete_run_date(spark, str(output), RUN_DATE + ONE_DAY, OTHER_DATE) == OTHER_DATE
    )
    assert_published(spark, output, "v1", OTHER_DATE)
    assert read_published(spark, str(output), "findings", RUN_DATE).count() == 2
    assert not (output / "_staging").exists()

    # WHEN the next run of D publishes v3 THEN D is exactly v3
    run(spark, output, "v3")
    assert_published(spark, output, "v3")
    assert_only_published_tables(output)


def test_a_killed_run_s_staging_is_removed_by_the_next_run(
    spark: SparkSession, tmp_path: Path
) -> None:
    # GIVEN D published as v1, and v2 staged by a run killed before it published (its
    # staging directory survives: no code of that run ran after the kill)
    output = tmp_path / "output"
    run(spark, output, "v1")
    staged = Path(stage(spark, outputs(spark, "v2"), output, RUN_DATE, "killed"))
    staged.mkdir(parents=True)
    (staged / "left-over").write_text("v2")

    # WHEN the next run publishes v3 THEN D is v3 and the killed run's staging is gone
    run(spark, output, "v3")
    assert_published(spark, output, "v3")
    assert_only_published_tables(output)


def test_failed_staging_leaves_the_published_outputs_untouched(
    spark: SparkSession, tmp_path: Path
) -> None:
    # GIVEN D published as v1
    output = tmp_path / "output"
    run(spark, output, "v1")
    before = sorted(p.relative_to(output) for p in output.rglob("*"))

    # WHEN staging v2 fails while writing its second output
    failing = outputs(spark, "v2")["findings"].withColumn("rule", F.raise_error(F.lit("injected")))
    broken = {**outputs(spark, "v2"), "findings": failing}
    with pytest.raises(Exception, match="injected"):
        stage(spark, broken, output, RUN_DATE, "run-v2")

    # THEN D is v1 and the file tree is as before: the failed staging was removed
    assert_published(spark, output, "v1")
    assert sorted(p.relative_to(output) for p in output.rglob("*")) == before
    assert_only_published_tables(output)


def test_the_report_page_is_published_with_the_report(spark: SparkSession, tmp_path: Path) -> None:
    # GIVEN D staged with its HTML page beside the report
    output = tmp_path / "output"
    with staging_directory(spark, str(output), RUN_DATE, "run-v1") as staging:
        staged = stage_outputs(outputs(spark, "v1"), staging)
        stage_report_page(spark, staging, "<p>v1</p>")
        # WHEN published
        paths, published = publish(spark, staging, staged, {"version": "v1"}, str(output), RUN_DATE)
    # THEN the page is in D's report directory, and nothing is left in staging
    assert (Path(paths["reports"]) / "alerts.html").read_text() == "<p>v1</p>"
    assert report(output) == published == {"version": "v1", TABLE_VERSIONS: dict.fromkeys(ORDER, 0)}
    assert_only_published_tables(output)


def test_a_column_a_newer_release_adds_joins_the_published_table(
    spark: SparkSession, tmp_path: Path
) -> None:
    # GIVEN findings published by a release without the explained_by column
    older = spark.createDataFrame([("A", "CONSUMPTION_DROP")], "device_id string, rule string")
    publishing.commit_table(older, str(tmp_path), "findings", date(2026, 11, 14))
    # WHEN the next date publishes it
    newer = spark.createDataFrame(
        [("B", "SUSTAINED_DROP", "BASE_LOAD_HELD")],
        "device_id string, rule string, explained_by string",
    )
    publishing.commit_table(newer, str(tmp_path), "findings", date(2026, 11, 15))
    # THEN the table has it, null on the date published before it
    rows = spark.read.format("delta").load(str(tmp_path / "findings")).orderBy("device_id")
    assert [(r["device_id"], r["explained_by"]) for r in rows.collect()] == [
        ("A", None),
        ("B", "BASE_LOAD_HELD"),
    ]


def test_vacuum_removes_files_older_than_the_retention_and_keeps_the_listing_setting(
    spark: SparkSession, tmp_path: Path
) -> None:
    # GIVEN a Delta table, a file no version names written eight days ago (a killed
    # writer's), another written today, and a listing setting of the session's own
    path = tmp_path / "table"
    spark.range(3).write.format("delta").save(str(path))
    old, new = path / "part-old.parquet", path / "part-new.parquet"
    for stray in (old, new):
        stray.write_bytes(b"not named by any version")
    eight_days_ago = (datetime.now() - timedelta(days=8)).timestamp()
    os.utime(old, (eight_days_ago, eight_days_ago))
    spark.conf.set(publishing.LISTING_PARALLELISM_KEY, "7")
    try:
        # WHEN it is vacuumed
        publishing.vacuum(spark, str(path))
        # THEN the old file is gone, today's stays (a week of time travel), the table reads
        # as before, and the session's setting is back
        assert (not old.exists(), new.exists()) == (True, True)
        assert spark.read.format("delta").load(str(path)).count() == 3
        assert spark.conf.get(publishing.LISTING_PARALLELISM_KEY) == "7"
    finally:
        spark.conf.unset(publishing.LISTING_PARALLELISM_KEY)
