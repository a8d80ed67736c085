"""Are two outputs' published tables of a run date the same rows? And how many readings do
some input day partitions hold? The benchmark's daily case asks both of a small reader
process after the job's runs (the counts only read Parquet footers).

Run: ``DEBUG=1 python -m jobs.tools.same_outputs --config C --left OUT1 --right OUT2
--run-date D [--count-days D1 D2] --result result.json``.

A table is the same when both sides have the same columns and the same multiset of rows:
each row is compared as the JSON of all its columns (maps and arrays included; a double
is written with the shortest text that reads back to the same bits), counted both ways.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dependencies.publish import ORDER, read_published
from dependencies.spark import start_spark
from dependencies.tables import MEASURED_DATE

APP_NAME = "datalake_same_outputs"


def as_text(frame: DataFrame) -> DataFrame:
    """One column, ``row``: the JSON of every column of a row, in name order."""
    return frame.select(F.to_json(F.struct(*sorted(frame.columns))).alias("row"))


def table_difference(left: DataFrame, right: DataFrame) -> dict[str, Any]:
    """Rows of each side, and rows of each side the other lacks (as multisets)."""
    if sorted(left.columns) != sorted(right.columns):
        return {"same": False, "columns": [sorted(left.columns), sorted(right.columns)]}
    left_rows, right_rows = as_text(left).cache(), as_text(right).cache()
    only_left, only_right = (
        left_rows.exceptAll(right_rows).count(),
        right_rows.exceptAll(left_rows).count(),
    )
    rows = [left_rows.count(), right_rows.count()]
    return {
        "same": only_left == only_right == 0 and rows[0] == rows[1],
        "rows": rows,
        "only_left": only_left,
        "only_right": only_right,
    }


def compare_outputs(spark: SparkSession, left: str, right: str, run_date: str) -> dict[str, Any]:
    """Each published table of ``run_date`` in ``left`` against ``right``."""
    return {
        table: table_difference(
            read_published(spark, left, table, date.fromisoformat(run_date)),
            read_published(spark, right, table, date.fromisoformat(run_date)),
        )
        for table in ORDER
    }


def day_readings(spark: SparkSession, measurements: str, days: list[str]) -> dict[str, int]:
    """Rows in each input day partition ``measured_date=D`` of the measurements."""
    return {
        day: spark.read.parquet(f"{measurements}/{MEASURED_DATE}={day}").count() for day in days
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Compare two outputs' published tables of a run date."
    )
    parser.add_argument(
        "--config", required=True, help="the job config (input path, Spark settings)"
    )
    parser.add_argument("--left", required=True)
    parser.add_argument("--right", required=True)
    parser.add_argument("--run-date", required=True)
    parser.add_argument(
        "--count-days", nargs="*", default=[], help="input days whose readings to count"
    )
    parser.add_argument("--result", type=Path, required=True, help="where to write the JSON result")
    args = parser.parse_args(argv)
    spark, _, config = start_spark(app_name=APP_NAME, config_path=args.config)
    result = {
        "tables": compare_outputs(spark, args.left, args.right, args.run_date),
        "day_readings": day_readings(
            spark, f"{config['input']['path']}/measurements", args.count_days
        ),
    }
    args.result.write_text(json.dumps(result, indent=2), encoding="utf-8")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
