"""A CSV table's column names, read from its first file's header without a Spark job."""

from __future__ import annotations

import gzip
from pathlib import Path

from pyspark.sql import SparkSession

from dependencies.hadoop_fs import HadoopFs
from dependencies.tables import csv_header


def test_the_header_comes_from_the_first_file_with_a_line(
    spark: SparkSession, tmp_path: Path
) -> None:
    # GIVEN a partitioned table whose first file is empty, whose next is gzip-compressed
    # with a quoted name, a blank one and a byte order mark, and hidden files before both
    table = tmp_path / "measurements"
    table.mkdir()
    (table / "_SUCCESS").write_text("", encoding="utf-8")
    (table / ".part-0.csv.crc").write_text("not,data", encoding="utf-8")
    first_day = table / "measured_date=2026-11-01"
    first_day.mkdir()
    (first_day / "part-0.csv").write_text("", encoding="utf-8")
    with gzip.open(first_day / "part-1.csv.gz", "wt", encoding="utf-8") as file:
        file.write('\ufeffmeasuring_component_id,"measured,at",,value\nC1,x,,1\n')
    second_day = table / "measured_date=2026-11-02"
    second_day.mkdir()
    (second_day / "part-0.csv").write_text("other,names\n", encoding="utf-8")

    # WHEN its header is read
    header = csv_header(HadoopFs(spark, str(table)), str(table))

    # THEN it is the compressed file's, its blank name named by position as Spark names it
    assert header == ["measuring_component_id", "measured,at", "_c2", "value"]


def test_a_table_without_a_header_line_has_no_header(spark: SparkSession, tmp_path: Path) -> None:
    # GIVEN a table directory with an empty file only
    (tmp_path / "device").mkdir()
    (tmp_path / "device" / "part-0.csv").write_text("", encoding="utf-8")

    # WHEN its header is read THEN there is none
    assert csv_header(HadoopFs(spark, str(tmp_path)), str(tmp_path / "device")) is None
