"""The published tables are Delta tables any Delta reader opens: the ``deltalake`` package
(delta-rs, no Spark, no JVM) reads the same rows Spark reads."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import RUN_DATE
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from dependencies.publish import ORDER, read_published
from dependencies.publish import RUN_DATE as RUN_DATE_COLUMN


def plain(value: Any) -> Any:
    """``value`` in one spelling for both readers: Arrow's maps (lists of key-value pairs) and
    Spark's Rows (dictionaries) as dictionaries, lists element by element."""
    if hasattr(value, "asDict"):
        return {key: plain(item) for key, item in value.asDict().items()}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        if value and all(type(item) is tuple and len(item) == 2 for item in value):
            return {key: plain(item) for key, item in value}
        return [plain(item) for item in value]
    return value


@pytest.mark.parametrize("table", ORDER)
def test_delta_rs_reads_what_spark_reads(
    spark: SparkSession, sample_published: Path, table: str
) -> None:
    # GIVEN the sample run's published table WHEN delta-rs reads the run date's partition
    delta = DeltaTable(str(sample_published / table))
    arrow = delta.to_pyarrow_table(partitions=[(RUN_DATE_COLUMN, "=", RUN_DATE)])
    rows = [plain(row) for row in arrow.drop_columns([RUN_DATE_COLUMN]).to_pylist()]

    # THEN it holds the rows Spark reads for that date, column for column, in the same order
    spark_rows = read_published(spark, str(sample_published), table, date.fromisoformat(RUN_DATE))
    assert arrow.num_rows > 0 or table == "rejects"
    assert set(arrow.schema.names) == {*spark_rows.columns, RUN_DATE_COLUMN}
    assert rows == [plain(row) for row in spark_rows.collect()]
    # AND the table's log says it is partitioned by run date, one commit so far
    assert delta.metadata().partition_columns == [RUN_DATE_COLUMN]
    assert delta.version() == 0
