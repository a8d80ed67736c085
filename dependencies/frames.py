"""What any job's DataFrame steps share: the type of a step, and a union of many frames."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import reduce

from pyspark.sql import DataFrame

# A step of a job: a pure function from one frame to the next (``frame.transform(step)``).
Transform = Callable[[DataFrame], DataFrame]


def union_all(frames: Iterable[DataFrame]) -> DataFrame:
    """The rows of every frame (at least one), matched by column name."""
    return reduce(DataFrame.unionByName, frames)
