"""Idempotent, all-or-nothing publishing of one run date's outputs.

Every output is first written complete under ``_staging/<run id>/``; only then is each
``<table>/run_date=D/`` swapped in by directory renames through Hadoop's FileSystem API. The
report goes last, so a run date whose report is there is complete. Other run dates are never
touched, and a re-run for the same date replaces that date's partitions.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from pyspark.sql import DataFrame, SparkSession

REPORT_TABLE = "reports"
REPORT_FILE = "report.json"
STAGING = "_staging"
RETIRED = "_retired"
# Sort keys that make each output's rows come out in one deterministic order.
ORDER = {
    "alerts": ("device_id",),
    "findings": ("device_id", "rule"),
    "rejects": ("table", "reason", "record"),
}


class HadoopFs:
    """The few file system calls publishing needs, on any Hadoop-supported path."""

    def __init__(self, spark: SparkSession, path: str) -> None:
        self._jvm = spark.sparkContext._jvm
        conf = spark.sparkContext._jsc.hadoopConfiguration()
        self._fs = self._jvm.org.apache.hadoop.fs.Path(path).getFileSystem(conf)

    def _path(self, path: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""
        return bool(self._fs.exists(self._path(path)))

    def rename(self, source: str, target: str) -> None:
        """Move ``source`` to ``target``, creating the target's parent; fail if it cannot."""
        self._fs.mkdirs(self._path(target).getParent())
        if not self._fs.rename(self._path(source), self._path(target)):
            raise OSError(f"cannot rename {source} to {target}")

    def delete(self, path: str) -> None:
        """Delete ``path`` and everything below it."""
        self._fs.delete(self._path(path), True)

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


def stage_outputs(outputs: dict[str, DataFrame], output_path: str, run_id: str) -> str:
    """Write every output, sorted, as Parquet under a staging directory; return it."""
    staging = f"{output_path.rstrip('/')}/{STAGING}/{run_id}"
    for table, frame in outputs.items():
        (
            frame.repartition(1)
            .sortWithinPartitions(*ORDER[table])
            .write.mode("overwrite")
            .parquet(f"{staging}/{table}")
        )
    return staging


def publish(
    spark: SparkSession, staging: str, report: dict[str, Any], output_path: str, run_date: date
) -> dict[str, str]:
    """Swap every staged output into place for ``run_date``, the report last."""
    fs = HadoopFs(spark, output_path)
    fs.write_text(f"{staging}/{REPORT_TABLE}/{REPORT_FILE}", json.dumps(report, indent=2, sort_keys=True))
    retired = f"{staging}{RETIRED}"
    old_report = partition_path(output_path, REPORT_TABLE, run_date)
    if fs.exists(old_report):  # the date reads as incomplete until the new report lands
        fs.rename(old_report, f"{retired}/{REPORT_TABLE}")
    published = {}
    for table in [*ORDER, REPORT_TABLE]:
        target = partition_path(output_path, table, run_date)
        if fs.exists(target):
            fs.rename(target, f"{retired}/{table}")
        fs.rename(f"{staging}/{table}", target)
        published[table] = target
    fs.delete(retired)
    fs.delete(staging)
    return published
