"""The usage step: the readings checked and folded into the run's ledger of readings, once.

:func:`usage_ledger` asks :mod:`jobs.ledger` for the run's ledger (usage per device and day,
the other readings by status; stored days reused when the input is partitioned by day),
materializes it in one order, and returns it as :class:`ReadingsLedger` with the number of
readings read and what the store reused. Counts, rejects and daily usage all start from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from dependencies.fence import NO_FENCE, Fence
from dependencies.run_window import RunWindow
from dependencies.tables import read_failures_named
from dependencies.transforms import Materialize
from jobs import usage
from jobs.inputs import ValidatedTables, readings_inputs
from jobs.ledger import readings_ledger
from jobs.ledger.update import LedgerReuse
from jobs.run import Run


@dataclass(frozen=True)
class ReadingsLedger:
    """The run's ledger of readings (``frame``: a row per device and day of used intervals
    with its usage, a row per status and reject record of the other readings, each with the
    number of readings it stands for), how many readings the pass read (None: every reading
    of the input, counted on it with the run's other counts), and what the ledger store
    reused and computed (``reuse``)."""

    frame: DataFrame
    read_count: int | None
    reuse: LedgerReuse

    def daily_usage(self, window: RunWindow) -> DataFrame:
        """Usage per (device, day) of the baseline and the window."""
        return self.frame.transform(usage.daily_usage(window))


def usage_ledger(
    spark: SparkSession,
    tables: ValidatedTables,
    config: dict[str, Any],
    run: Run,
    window: RunWindow,
    work: str,
    materialize: Materialize,
    fence: Fence = NO_FENCE,
) -> ReadingsLedger:
    """The readings (of ``tables``, as read) checked and folded into the run's ledger, its
    days reused from the store (under the output path) or computed (``work``: the run's own
    directory for them; ``fence`` checks each commit to the store), and materialized in one
    order. A file of a small table that cannot be read is named by its table, though the
    pass is what reads it first."""
    inputs = readings_inputs(tables, config["usage"], window, run.started_at)
    with tables.failures_named():
        ledger, read_count, reuse = readings_ledger(
            spark,
            inputs,
            config["output"]["path"],
            config["input"]["path"],
            run.run_id,
            run.full_refresh,
            work,
            fence,
        )
        return ReadingsLedger(materialized_in_order(ledger, materialize), read_count, reuse)


def materialized_in_order(ledger: DataFrame, materialize: Materialize) -> DataFrame:
    """Compute the ledger once (the run's only pass over the readings), materialize it, and
    continue from the stored copy.

    It is stored in one order, whatever it was merged from (days kept in the store or
    computed now): the rules then add up the same numbers in the same order, so a run that
    reuses stored days publishes exactly what a full run does, to the last bit."""
    in_order = ledger.repartition("device_id").sortWithinPartitions(*usage.LEDGER_KEYS)
    with read_failures_named("measurements"):
        return materialize(in_order, "readings_ledger")
