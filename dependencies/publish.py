"""Idempotent publishing of one run date's outputs, as Delta Lake tables.

Every output is first written complete under ``_staging/run_date=D/<run id>/`` (beside the
run's intermediate tables under ``_work/``, which are never published). Publishing then
removes D's report (from here on D reads as incomplete), replaces exactly D's rows of each
table in one Delta commit per table (``replaceWhere run_date = D``), and writes D's HTML page
and, last, its report under ``reports/run_date=D/``: a run date whose report is there is
complete. Other run dates are never touched; a re-run replaces exactly its date, and the
tables' history (time travel) keeps what every earlier run published.

A reader never sees half a commit; one that wants only complete dates reads those with a
report (:func:`latest_complete_run_date`, :func:`read_published`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dependencies.fence import NO_FENCE, Fence
from dependencies.hadoop_fs import HadoopFs

REPORT_TABLE = "reports"
REPORT_FILE = "report.json"
# The investigator's page, published beside the report (same directory, written just before).
REPORT_PAGE = "alerts.html"
# The report's key naming each published table's Delta version, and where a table's
# commits are.
TABLE_VERSIONS = "table_versions"
DELTA_LOG = "_delta_log"
STAGING = "_staging"
# Intermediate tables of a run, under its staging directory; never published.
WORK = "_work"
# The column every published table is partitioned by.
RUN_DATE = "run_date"
# Sort keys that make each output's rows come out in one deterministic order.
ORDER = {
    "alerts": ("rank",),
    "findings": ("device_id", "rule"),
    "rejects": ("table", "reason", "record"),
    "evidence": ("rank", "day"),
}
# Everything published for a run date, in publishing order: the report, the completion
# marker, last.
PUBLISHED = (*ORDER, REPORT_TABLE)
# The setting Delta's VACUUM lists a table's files with, as that many tasks (10,000 unless set).
LISTING_PARALLELISM_KEY = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


def partition_path(output_path: str, table: str, run_date: date) -> str:
    """The directory of ``table``'s partition for ``run_date`` (the report's: a plain
    directory; a Delta table's: read it with :func:`read_published`, not as files)."""
    return f"{table_path(output_path, table)}/{RUN_DATE}={run_date.isoformat()}"


def table_path(output_path: str, table: str) -> str:
    """Where published ``table`` lies (a Delta table, but for the reports' directory)."""
    return f"{output_path.rstrip('/')}/{table}"


def read_published(spark: SparkSession, output_path: str, table: str, run_date: date) -> DataFrame:
    """The rows of ``table`` published for ``run_date``, without the partition column."""
    published = spark.read.format("delta").load(table_path(output_path, table))
    return published.where(F.col(RUN_DATE) == F.lit(run_date)).drop(RUN_DATE)


def staging_root(output_path: str, run_date: date) -> str:
    """Where the runs of ``run_date`` stage their outputs."""
    return partition_path(output_path, STAGING, run_date)


@contextmanager
def staging_directory(
    spark: SparkSession, output_path: str, run_date: date, run_id: str, fence: Fence = NO_FENCE
) -> Iterator[str]:
    """This run's fresh staging directory, for the block's writes.

    First removes whatever an earlier, killed run of ``run_date`` left staged. Whether the
    block succeeds or fails, the date's staging directory is gone after it, unless this run
    lost its lock (``fence``): the date's staging is then the new holder's."""
    fs = HadoopFs(spark, output_path)
    fence.check("removing what an earlier run staged")
    remove_staging(fs, output_path, run_date)
    try:
        yield f"{staging_root(output_path, run_date)}/{run_id}"
    finally:
        if fence.holds():
            remove_staging(fs, output_path, run_date)


def work_path(staging: str, name: str) -> str:
    """Where the run's intermediate table ``name`` lies; it goes when the staging
    directory does."""
    return f"{staging}/{WORK}/{name}"


def stage_work(frame: DataFrame, staging: str, name: str) -> DataFrame:
    """Write an intermediate table of the run as Parquet under its staging directory and
    return it read back: later steps start from the stored rows instead of recomputing (or
    re-planning) everything behind them. It goes when the staging directory does."""
    path = work_path(staging, name)
    frame.write.mode("overwrite").parquet(path)
    return frame.sparkSession.read.schema(frame.schema).parquet(path)


def stage_report_page(spark: SparkSession, staging: str, text: str) -> None:
    """Write the run's HTML page into its staging directory: :func:`publish` publishes it
    with the report."""
    HadoopFs(spark, staging).write_text(f"{staging}/{REPORT_TABLE}/{REPORT_PAGE}", text)


def latest_complete_run_date(
    spark: SparkSession, output_path: str, before: date, earliest: date
) -> date | None:
    """The latest run date in ``[earliest, before)`` whose report is published (a complete
    run) under ``output_path``; None if there is none."""
    fs = HadoopFs(spark, output_path)
    prefix = f"{RUN_DATE}="
    dates = []
    for name in fs.children(table_path(output_path, REPORT_TABLE)):
        try:
            day = date.fromisoformat(name.removeprefix(prefix)) if name.startswith(prefix) else None
        except ValueError:
            day = None
        if day is not None and earliest <= day < before:
            dates.append(day)
    for day in sorted(dates, reverse=True):
        if fs.exists(f"{partition_path(output_path, REPORT_TABLE, day)}/{REPORT_FILE}"):
            return day
    return None


def stage_outputs(outputs: dict[str, DataFrame], staging: str) -> dict[str, DataFrame]:
    """Write every output, sorted, as Parquet under the run's staging directory (one file
    each: the last step of each is one task, no shuffle); return each as staged (read back),
    for the steps that build on it."""
    staged = {}
    for table, frame in outputs.items():
        (
            frame.coalesce(1)
            .sortWithinPartitions(*ORDER[table])
            .write.mode("overwrite")
            .parquet(f"{staging}/{table}")
        )
        staged[table] = frame.sparkSession.read.schema(frame.schema).parquet(f"{staging}/{table}")
    return staged


def commit_table(frame: DataFrame, output_path: str, table: str, run_date: date) -> None:
    """Replace ``run_date``'s rows of Delta table ``table`` by ``frame``'s, in one commit
    (the table is created, partitioned by run date, on its first commit; a column a newer
    release adds joins the table, null on the dates published before it)."""
    (
        frame.withColumn(RUN_DATE, F.lit(run_date))
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"{RUN_DATE} = '{run_date.isoformat()}'")
        .option("mergeSchema", "true")
        .partitionBy(RUN_DATE)
        .save(table_path(output_path, table))
    )


def vacuum(spark: SparkSession, path: str) -> None:
    """``VACUUM`` the Delta table at ``path`` (its default retention: a week of time travel),
    listing its files with one task per core of the session rather than Spark's default of
    10,000 (with which a small table's VACUUM takes 25 s)."""
    previous = spark.conf.get(LISTING_PARALLELISM_KEY, None)
    spark.conf.set(LISTING_PARALLELISM_KEY, str(spark.sparkContext.defaultParallelism))
    try:
        spark.sql(f"VACUUM delta.`{path}`").collect()
    finally:
        if previous is None:
            spark.conf.unset(LISTING_PARALLELISM_KEY)
        else:
            spark.conf.set(LISTING_PARALLELISM_KEY, previous)


def delta_version(fs: HadoopFs, path: str) -> int | None:
    """The latest version of the Delta table at ``path`` (its newest commit file), if any."""
    commits = [
        name.removesuffix(".json")
        for name in fs.children(f"{path}/{DELTA_LOG}")
        if name.endswith(".json")
    ]
    return max((int(c) for c in commits if c.isdigit()), default=None)


def publish(
    spark: SparkSession,
    staging: str,
    staged: dict[str, DataFrame],
    report: dict[str, Any],
    output_path: str,
    run_date: date,
    fence: Fence = NO_FENCE,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Publish every staged output for ``run_date`` (``staged``: each table as
    :func:`stage_outputs` returned it, under ``staging``): its old report goes first, then each
    table's rows are replaced in one commit, then the page and the report are written, the
    report naming the Delta version of each table that holds the date's rows
    (``table_versions``: a reader pinned to them reads the date as published, whatever
    runs later). Before each of those writes, ``fence`` checks that the run still holds its
    lock. Returns the published paths (the tables', and the report's directory) and the report
    as published."""
    fs = HadoopFs(spark, output_path)
    report_directory = partition_path(output_path, REPORT_TABLE, run_date)
    fence.check("removing the date's report")
    fs.delete(report_directory)  # D now reads as incomplete
    versions = {}
    for table in ORDER:
        fence.check(f"committing {table}")
        commit_table(staged[table], output_path, table, run_date)
        versions[table] = delta_version(fs, table_path(output_path, table))
    report = {**report, TABLE_VERSIONS: versions}
    fence.check("publishing the report")
    page = f"{staging}/{REPORT_TABLE}/{REPORT_PAGE}"
    if fs.exists(page):
        fs.rename(page, f"{report_directory}/{REPORT_PAGE}")
    text = json.dumps(report, indent=2, sort_keys=True)
    fs.write_text(f"{staging}/{REPORT_TABLE}/{REPORT_FILE}", text)
    fs.rename(f"{staging}/{REPORT_TABLE}/{REPORT_FILE}", f"{report_directory}/{REPORT_FILE}")
    paths = {
        **{table: table_path(output_path, table) for table in ORDER},
        REPORT_TABLE: report_directory,
    }
    return paths, report


def remove_staging(fs: HadoopFs, output_path: str, run_date: date) -> None:
    """Delete ``run_date``'s staging directory, and ``_staging/`` itself once no run date
    stages there any more: a finished run leaves only the published tables."""
    fs.delete(staging_root(output_path, run_date))
    staging = f"{output_path.rstrip('/')}/{STAGING}"
    if fs.exists(staging) and not fs.children(staging):
        fs.delete(staging)
