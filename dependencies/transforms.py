"""What any job's DataFrame steps share: the type of a step, the type of a step that stores
a frame, a union of many frames, a correlation that tolerates constant columns, and the median
of an array's values."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# A step of a job: a pure function from one frame to the next (``frame.transform(step)``).
Transform = Callable[[DataFrame], DataFrame]
# Computes a frame that later steps read many times once, stores it (``name``: what as) and
# returns the stored copy, whose plan starts from the stored rows: ``materialize(frame, name)``.
Materialize = Callable[[DataFrame, str], DataFrame]


def union_all(frames: Iterable[DataFrame]) -> DataFrame:
    """The rows of every frame (at least one), matched by column name."""
    return reduce(DataFrame.unionByName, frames)


def correlation(x: str, y: str) -> Column:
    """Pearson's correlation of columns ``x`` and ``y`` (an aggregate), NULL where either is
    constant. Spark's ``corr`` divides by zero there, an error under ANSI SQL (Spark 4.2)."""
    return F.try_divide(F.covar_pop(x, y), F.stddev_pop(x) * F.stddev_pop(y))


def array_median(values: Column) -> Column:
    """The median of an array's non-null values (the mean of the middle two for an even
    count), NULL where it has none: built-in array functions, no Python."""
    present = F.sort_array(F.filter(values, lambda value: value.isNotNull()))
    count = F.size(present)
    low = F.element_at(present, F.floor((count + 1) / 2).cast("int"))
    high = F.element_at(present, (F.floor(count / 2) + 1).cast("int"))
    return F.when(count > 0, (low + high) / 2)
