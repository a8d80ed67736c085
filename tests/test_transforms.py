"""The shared DataFrame helpers of ``dependencies.transforms`` on tiny frames."""

from __future__ import annotations

from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from dependencies.transforms import array_median


def test_array_median_of_odd_even_null_and_empty_arrays(spark: SparkSession) -> None:
    # GIVEN arrays of an odd and an even number of values, one with nulls, an empty one,
    # one of nulls only, and a null array
    frame = spark.createDataFrame(
        [
            ("odd", [3.0, 1.0, 2.0]),
            ("even", [4.0, 1.0, 3.0, 2.0]),
            ("nulls", [None, 5.0, None, 1.0, 9.0]),
            ("empty", []),
            ("only nulls", [None, None]),
            ("none", None),
        ],
        "name string, values array<double>",
    )
    # WHEN their medians are taken
    medians = frame.select("name", array_median(F.col("values")).alias("median"))
    # THEN the middle value, the mean of the middle two, the nulls skipped, and NULL where
    # there is no value
    expected = spark.createDataFrame(
        [
            ("odd", 2.0),
            ("even", 2.5),
            ("nulls", 5.0),
            ("empty", None),
            ("only nulls", None),
            ("none", None),
        ],
        "name string, median double",
    )
    assert_df_equality(medians, expected, ignore_row_order=True)
