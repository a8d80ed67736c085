"""The one pass over the readings shuffles them once: partitioned by component and sorted by
time, every window (validation, intervals, zero runs) and the fold into rows per component
and day run on that one partitioning, also when a block of days continues each component's
chain from a stored state. A change that adds an exchange or a sort of the readings (a
window on other keys, a join that is not broadcast, a union that loses the partitioning)
makes this test fail. So does a text value of the readings parsed more than once per row."""

from __future__ import annotations

import re
from datetime import datetime

from conftest import TEST_DATA, sample_inputs, sample_rows
from pyspark.sql import DataFrame, SparkSession

from dependencies.tables import read_raw_table
from jobs.ledger.compute import block_rows, unstored_ledger
from jobs.validate import type_rows

# The operators of the plan a reading passes through, by how the physical plan names them.
SHUFFLE = "Exchange hashpartitioning"
SORT = "Sort "


def _depth(line: str) -> int:
    """Where an operator's name begins on a line of a plan's tree."""
    found = re.search(r"[A-Za-z]", line)
    return found.start() if found else 0


def operators_above(tree: str, leaf: str) -> list[str]:
    """The operators from the plan's root down to the first line containing ``leaf``."""
    lines = tree.splitlines()
    index = next(i for i, line in enumerate(lines) if leaf in line)
    depth, path = _depth(lines[index]), []
    for line in reversed(lines[:index]):
        if _depth(line) < depth:
            path.append(line[_depth(line) :])
            depth = _depth(line)
    return path


def assert_shuffled_and_sorted_once(rows: DataFrame) -> None:
    """Between the readings' scan and ``rows`` there is one exchange (by component) and one
    sort."""
    plan = rows._jdf.queryExecution().executedPlan().treeString()
    above = operators_above(plan, f"{TEST_DATA}/measurements")
    shuffles = [re.sub(r"#\d+", "", op.split(",")[0]) for op in above if op.startswith(SHUFFLE)]
    assert shuffles == [f"{SHUFFLE}(measuring_component_id"], above
    assert len([op for op in above if op.startswith(SORT)]) == 1, above


def test_the_readings_are_shuffled_and_sorted_once(spark: SparkSession) -> None:
    # GIVEN the sample's tables WHEN the pass folds the readings into rows per component
    # and day THEN they are shuffled once, by component, and sorted once
    assert_shuffled_and_sorted_once(sample_rows(spark))


def test_a_block_continuing_from_a_state_shuffles_the_readings_once(spark: SparkSession) -> None:
    # GIVEN the sample's tables and the state a component entered the block with
    inputs = sample_inputs(spark)
    entering = spark.createDataFrame(
        [("R01-IMP", datetime(2026, 10, 4, 23, 45), 100.0, 2, None)],
        "measuring_component_id string, last_at timestamp, last_value double, used long, "
        "run_since timestamp",
    )
    # WHEN a block of days folds the readings, continuing each chain from that state
    rows = block_rows(inputs, entering, inputs.window.read_start)
    # THEN the carried readings join the readings' partitioning: still one shuffle, one sort
    assert_shuffled_and_sorted_once(rows)


def test_an_unstored_ledger_folds_the_readings_once(spark: SparkSession) -> None:
    # GIVEN the sample's tables, whose readings are not partitioned by day (nothing stored)
    # WHEN the run's ledger is computed from every reading of its read range
    ledger = unstored_ledger(sample_inputs(spark))
    # THEN its query reads the rows the pass folded, kept once: not the readings (which it
    # would read twice, once for the readings before B)
    plan = ledger._jdf.queryExecution().executedPlan().treeString()
    assert f"{TEST_DATA}/measurements" not in plan


def test_each_text_value_of_a_reading_is_parsed_once(spark: SparkSession) -> None:
    # GIVEN the sample's readings as CSV text
    raw = read_raw_table(spark, str(TEST_DATA), "measurements", "csv")
    # WHEN they are typed and each given the status that typing finds
    plan = raw.transform(type_rows("measurements"))._jdf.queryExecution().optimizedPlan()
    # THEN the instant and the value are each parsed once per row, though the status tests
    # both parses again
    parses = re.findall(r"try_cast\(trim\((\w+)#\d+, None\) as (\w+)\)", plan.toString())
    assert sorted(parses) == [("measured_at", "timestamp"), ("value", "double")]
