"""The ledger's version names what a stored day holds: a change to the rows the pass over the
readings computes must come with a new :data:`jobs.ledger.LEDGER_VERSION`, or a run
would reuse days stored with the old meaning. An edit that changes no row keeps the version
(and the store).

When this test fails after an intended change of the rows: raise ``LEDGER_VERSION`` and add
its fingerprint (the value the failure prints) to ``FINGERPRINTS``.
"""

from __future__ import annotations

from conftest import fingerprint, sample_rows
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import ledger

# The sample's rows (tests/test_data, run date RUN_DATE) per ledger version.
FINGERPRINTS = {1: 979413358616923651}


def test_the_sample_rows_are_those_of_the_ledger_version(spark: SparkSession) -> None:
    # GIVEN the sample's readings WHEN the pass folds them into the ledger's rows
    found = fingerprint(sample_rows(spark))
    # THEN they are the rows recorded for the ledger's version
    version = ledger.LEDGER_VERSION
    assert FINGERPRINTS.get(version) == found, (
        f"the ledger's rows changed (fingerprint {found}) while LEDGER_VERSION is still "
        f"{version}: raise it and record the new fingerprint"
    )


def test_the_fingerprint_tells_a_changed_row(spark: SparkSession) -> None:
    # GIVEN a few rows WHEN one amount changes beyond the compared decimals
    rows = spark.createDataFrame([("a", 1.0), ("b", 2.0)], "id string, kwh double")
    changed = rows.withColumn("kwh", F.when(F.col("id") == "b", 2.00001).otherwise(F.col("kwh")))
    reordered = rows.orderBy(F.col("id").desc())
    # THEN the fingerprint differs, and does not depend on the rows' order
    assert fingerprint(changed) != fingerprint(rows)
    assert fingerprint(reordered) == fingerprint(rows)
