"""The one pass over the readings shuffles them once: partitioned by component and sorted by
time, every window (validation, intervals, zero runs) and the fold into rows per component
and day run on that one partitioning. A change that adds an exchange or a sort of the
readings (a window on other keys, a join that is not broadcast) makes this test fail."""

from __future__ import annotations

import re

from conftest import TEST_DATA, sample_rows
from pyspark.sql import SparkSession

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


def test_the_readings_are_shuffled_and_sorted_once(spark: SparkSession) -> None:
    # GIVEN the sample's tables WHEN the pass folds the readings into rows per component
    # and day
    plan = sample_rows(spark)._jdf.queryExecution().executedPlan().treeString()
    # THEN between the readings' scan and the rows there is one exchange (by component) and
    # one sort
    above = operators_above(plan, f"{TEST_DATA}/measurements")
    shuffles = [re.sub(r"#\d+", "", op.split(",")[0]) for op in above if op.startswith(SHUFFLE)]
    assert shuffles == [f"{SHUFFLE}(measuring_component_id"], above
    assert len([op for op in above if op.startswith(SORT)]) == 1, above
