"""Idempotent, all-or-nothing publishing of one run date's outputs.

Every output is first written complete under ``_staging/run_date=D/<run id>/``, the report
too (beside the run's intermediate tables under ``_work/``, which are never published). Only
then are the partitions ``<table>/run_date=D/`` swapped in by directory renames through
Hadoop's FileSystem API: D's old report is moved aside first and the new report goes
in last, so a run date whose report is there is complete. Other run dates are never touched,
and a re-run for the same date replaces exactly that date's partitions.

The swap can always be undone from what is on disk: a partition moved aside waits in
``<run id>_retired/``, and that directory exists from the first step of the swap on. A swap
that fails is undone at once; one that was killed is undone by the next run of the date.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from pyspark.sql import DataFrame, SparkSession

REPORT_TABLE = "reports"
REPORT_FILE = "report.json"
# The investigator's page, published beside the report (same directory, same swap).
REPORT_PAGE = "alerts.html"
STAGING = "_staging"
# Intermediate tables of a run, under its staging directory; never published.
WORK = "_work"
RETIRED = "_retired"
# Sort keys that make each output's rows come out in one deterministic order.
ORDER = {
    "alerts": ("rank",),
    "findings": ("device_id", "rule"),
    "rejects": ("table", "reason", "record"),
    "evidence": ("rank", "day"),
}
# The published tables in swap order: the report, the completion marker, last.
PUBLISHED = (*ORDER, REPORT_TABLE)


class HadoopFs:
    """The few file system calls publishing needs, on any Hadoop-supported path."""

    def __init__(self, spark: SparkSession, path: str) -> None:
        self._jvm = spark.sparkContext._jvm
        conf = spark.sparkContext._jsc.hadoopConfiguration()
        self._fs = self._jvm.org.apache.hadoop.fs.Path(path).getFileSystem(conf)
        # On the local file system, reading and listing many small files is done by Python
        # (one call to the JVM per file and property is slow); elsewhere through Hadoop.
        self._local = str(self._fs.getScheme()) == "file"

    @staticmethod
    def _os_path(path: str) -> str:
        return path.removeprefix("file:")

    def _path(self, path: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""
        return bool(self._fs.exists(self._path(path)))

    def children(self, path: str) -> list[str]:
        """The names of the entries of directory ``path`` (none if it does not exist)."""
        if not self.exists(path):
            return []
        return sorted(
            str(status.getPath().getName()) for status in self._fs.listStatus(self._path(path))
        )

    def mkdirs(self, path: str) -> None:
        """Create directory ``path`` and its parents."""
        self._fs.mkdirs(self._path(path))

    def rename(self, source: str, target: str) -> None:
        """Move ``source`` to ``target``, creating the target's parent; fail if it cannot."""
        self._fs.mkdirs(self._path(target).getParent())
        if not self._fs.rename(self._path(source), self._path(target)):
            raise OSError(f"cannot rename {source} to {target}")

    def delete(self, path: str) -> None:
        """Delete ``path`` and everything below it."""
        self._fs.delete(self._path(path), True)

    def read_text(self, path: str) -> str | None:
        """The text (UTF-8) of file ``path``, or None if there is none."""
        if self._local:
            try:
                with open(self._os_path(path), encoding="utf-8") as file:
                    return file.read()
            except FileNotFoundError:
                return None
        if not self.exists(path):
            return None
        stream = self._fs.open(self._path(path))
        try:
            reader = self._jvm.java.io.BufferedReader(
                self._jvm.java.io.InputStreamReader(stream, "UTF-8")
            )
            return "\n".join(iter(reader.readLine, None))
        finally:
            stream.close()

    def files(self, path: str) -> list[tuple[str, int, int]]:
        """Every data file below directory ``path`` (names starting with ``_`` or ``.`` are
        not data): its path relative to ``path``, size and modification time (ms)."""
        if self._local:
            return self._local_files(self._os_path(path))
        if not self.exists(path):
            return []
        root = str(self._fs.makeQualified(self._path(path)).toUri().getPath()).rstrip("/")
        found, listing = [], self._fs.listFiles(self._path(path), True)
        while listing.hasNext():
            status = listing.next()
            name = str(status.getPath().toUri().getPath())
            relative = name[len(root) + 1 :] if name.startswith(root + "/") else name
            if not any(part.startswith(("_", ".")) for part in relative.split("/")):
                found.append((relative, int(status.getLen()), int(status.getModificationTime())))
        return sorted(found)

    @staticmethod
    def _local_files(root: str) -> list[tuple[str, int, int]]:
        found = []
        for directory, subdirectories, names in os.walk(root):
            subdirectories[:] = [d for d in subdirectories if not d.startswith(("_", "."))]
            for name in names:
                if not name.startswith(("_", ".")):
                    status = os.stat(os.path.join(directory, name))
                    relative = os.path.relpath(os.path.join(directory, name), root)
                    found.append((relative, status.st_size, status.st_mtime_ns // 1_000_000))
        return sorted(found)

    def write_text(self, path: str, text: str) -> None:
        """Write ``text`` (UTF-8) to a new file at ``path``."""
        stream = self._fs.create(self._path(path), True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()


def partition_path(output_path: str, table: str, run_date: date) -> str:
    """Where ``table``'s output for ``run_date`` is published."""
    return f"{output_path.rstrip('/')}/{table}/run_date={run_date.isoformat()}"


def staging_root(output_path: str, run_date: date) -> str:
    """Where the runs of ``run_date`` stage their outputs."""
    return partition_path(output_path, STAGING, run_date)


@contextmanager
def staging_directory(
    spark: SparkSession, output_path: str, run_date: date, run_id: str
) -> Iterator[str]:
    """This run's fresh staging directory, for the block's writes.

    First undoes whatever an earlier, killed run of ``run_date`` left half done. If the block
    fails, the date's staging directory is removed and nothing else has changed."""
    fs = HadoopFs(spark, output_path)
    restore(fs, output_path, run_date)
    root = staging_root(output_path, run_date)
    try:
        yield f"{root}/{run_id}"
    except BaseException:
        remove_staging(fs, output_path, run_date)
        raise


def stage_work(frame: DataFrame, staging: str, name: str) -> DataFrame:
    """Write an intermediate table of the run as Parquet under its staging directory and
    return it read back: later steps start from the stored rows instead of recomputing (or
    re-planning) everything behind them. It goes when the staging directory does."""
    path = f"{staging}/{WORK}/{name}"
    frame.write.mode("overwrite").parquet(path)
    return frame.sparkSession.read.parquet(path)


def stage_report_page(spark: SparkSession, staging: str, text: str) -> None:
    """Write the run's HTML page into its staged report directory: :func:`publish` swaps it
    in with the report."""
    HadoopFs(spark, staging).write_text(f"{staging}/{REPORT_TABLE}/{REPORT_PAGE}", text)


def latest_complete_run_date(
    spark: SparkSession, output_path: str, before: date, earliest: date
) -> date | None:
    """The latest run date in ``[earliest, before)`` whose report is published (a complete
    run) under ``output_path``; None if there is none."""
    fs = HadoopFs(spark, output_path)
    reports = f"{output_path.rstrip('/')}/{REPORT_TABLE}"
    prefix = "run_date="
    dates = []
    for name in fs.children(reports):
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
    """Write every output, sorted, as Parquet under the run's staging directory; return
    each as staged (read back), for the steps that build on it."""
    staged = {}
    for table, frame in outputs.items():
        (
            frame.repartition(1)
            .sortWithinPartitions(*ORDER[table])
            .write.mode("overwrite")
            .parquet(f"{staging}/{table}")
        )
        staged[table] = frame.sparkSession.read.parquet(f"{staging}/{table}")
    return staged


def publish(
    spark: SparkSession, staging: str, report: dict[str, Any], output_path: str, run_date: date
) -> dict[str, str]:
    """Swap every staged output into place for ``run_date``, the report last; return the
    published paths. If any step fails, the previous outputs of ``run_date`` are put back."""
    fs = HadoopFs(spark, output_path)
    fs.write_text(
        f"{staging}/{REPORT_TABLE}/{REPORT_FILE}", json.dumps(report, indent=2, sort_keys=True)
    )
    retired = f"{staging}{RETIRED}"
    try:
        fs.mkdirs(retired)  # from here on the swap is under way, and can be undone
        retire(fs, output_path, REPORT_TABLE, run_date, retired)  # D now reads as incomplete
        for table in PUBLISHED:
            if table != REPORT_TABLE:
                retire(fs, output_path, table, run_date, retired)
            fs.rename(f"{staging}/{table}", partition_path(output_path, table, run_date))
    except BaseException:
        restore(fs, output_path, run_date)
        raise
    remove_staging(fs, output_path, run_date)
    return {table: partition_path(output_path, table, run_date) for table in PUBLISHED}


def retire(fs: HadoopFs, output_path: str, table: str, run_date: date, retired: str) -> None:
    """Move ``table``'s published partition for ``run_date``, if any, aside into ``retired``."""
    target = partition_path(output_path, table, run_date)
    if fs.exists(target):
        fs.rename(target, f"{retired}/{table}")


def restore(fs: HadoopFs, output_path: str, run_date: date) -> None:
    """Undo every swap of ``run_date`` that started and did not finish, then remove the
    date's staging directory.

    A swap started once ``<run id>_retired`` exists, and finished once the staged report is
    gone (it moves last). Undoing it moves each partition it swapped in back to staging,
    then each retired one back into place, the report last; each step can be repeated, so
    a restore that is itself interrupted is completed by the next one."""
    root = staging_root(output_path, run_date)
    for name in fs.children(root):
        staging, retired = f"{root}/{name}", f"{root}/{name}{RETIRED}"
        started = not name.endswith(RETIRED) and fs.exists(retired)
        if not started or not fs.exists(f"{staging}/{REPORT_TABLE}"):
            continue
        for table in PUBLISHED:
            target = partition_path(output_path, table, run_date)
            if not fs.exists(f"{staging}/{table}") and fs.exists(target):
                fs.rename(target, f"{staging}/{table}")
            if fs.exists(f"{retired}/{table}"):
                fs.rename(f"{retired}/{table}", target)
    remove_staging(fs, output_path, run_date)


def remove_staging(fs: HadoopFs, output_path: str, run_date: date) -> None:
    """Delete ``run_date``'s staging directory, and ``_staging/`` itself once no run date
    stages there any more: a finished run leaves only the published tables."""
    fs.delete(staging_root(output_path, run_date))
    staging = f"{output_path.rstrip('/')}/{STAGING}"
    if fs.exists(staging) and not fs.children(staging):
        fs.delete(staging)
