"""The four input tables: extract, validate, count and quarantine.

Every input row gets a status: ``used``, ``deduplicated``, ``outside_window`` or the reason
it is rejected (:mod:`jobs.validate`). The small tables are validated here, row by row, into
:class:`ValidatedTables`; the readings are validated inside the one pass that folds them
into the readings' ledger (:mod:`jobs.readings`), whose rows say how many readings each
stands for. :func:`count_rows` then counts every table's rows by status in one query.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from dependencies.run_window import RunWindow
from dependencies.tables import (
    MEASURED_DATE,
    SPARK_ERRORS,
    TABLE_NAMES,
    InputError,
    count_read,
    read_failures_named,
    read_raw_table,
)
from dependencies.transforms import Transform, union_all
from jobs import validate
from jobs.ledger import Inputs
from jobs.usage import READINGS

# The tables validated row by row, in dependency order (the readings: by the ledger).
SMALL_TABLES = ("device", "measuring_component", "install_event")
# The small tables are checked in one partition: every window and aggregation of their
# checks then needs no shuffle (nor a Spark job of its own). A fleet's tables hold a few rows
# per meter, millions at most: one task sorts them in seconds.
SMALL_TABLE_PARTITIONS = 1


@dataclass(frozen=True)
class ValidatedTables:
    """The four tables as read (``raw``), and every row of the small ones with its status
    (``small``: ``status`` and the original ``record`` on each row, cached). The ``used``
    rows are the valid input of the readings' pass and of detection."""

    raw: dict[str, DataFrame]
    small: dict[str, DataFrame]

    def with_status(self, table: str) -> DataFrame:
        """Every row of small table ``table``, with its ``status`` and ``record``."""
        return self.small[table]

    def used(self, table: str) -> DataFrame:
        """The rows of small table ``table`` that detection uses, typed."""
        return _used(self.small[table])

    def valid_installs(self) -> DataFrame:
        """The install periods that passed every check, whether or not the run window needs
        them (a day's rows do not depend on the run date)."""
        frame = self.small["install_event"]
        valid = F.col("status").isin(validate.USED, validate.OUTSIDE_WINDOW)
        return frame.where(valid).drop("status", "record")

    def name_unreadable_table(self) -> None:
        """Raise an :class:`InputError` naming the first small table that cannot be read
        (as read, or as validated); return if they all can. Asked after a query over several
        tables failed, so that a file that cannot be read is named by its own table."""
        for table in SMALL_TABLES:
            count_read(self.raw[table], table)
            with read_failures_named(table):
                _status_counts([_weighed(self.small[table], table, F.col("status"))]).collect()

    @contextmanager
    def failures_named(self) -> Iterator[None]:
        """Inside the block (a query that reads the small tables too, such as the readings'
        pass), a failure is first checked against each small table alone: one of them that
        cannot be read is named; otherwise the failure passes through as it is."""
        try:
            yield
        except (*SPARK_ERRORS, InputError):
            self.name_unreadable_table()
            raise


def extract(
    spark: SparkSession, input_config: dict[str, Any], window: RunWindow
) -> dict[str, DataFrame]:
    """The four tables as stored; measurements only from the day partitions the run needs."""
    raw = {
        table: read_raw_table(spark, input_config["path"], table, input_config["format"])
        for table in TABLE_NAMES
    }
    if MEASURED_DATE in raw["measurements"].columns:
        day = F.col(MEASURED_DATE).cast("string")
        first, last = window.read_start_date, window.read_end_date
        raw["measurements"] = raw["measurements"].where(day.between(str(first), str(last)))
    return raw


def validate_tables(raw: dict[str, DataFrame], window: RunWindow) -> ValidatedTables:
    """Give every row of the small tables its status, in dependency order (cached: they are
    small, and read by several steps). Lazy: the rows are checked when a later step reads
    them (the readings' pass first)."""
    device = _checked(raw, "device")
    known_device = validate.check_reference(
        "device_id", _used(device), "device_id", "unknown_device"
    )
    small = {
        "device": device,
        "measuring_component": _checked(
            raw, "measuring_component", (validate.check_components, known_device)
        ),
        "install_event": _checked(
            raw,
            "install_event",
            (validate.check_installs, known_device),
            (validate.check_overlaps, validate.check_install_window(window)),
        ),
    }
    return ValidatedTables(raw, {table: small[table].cache() for table in SMALL_TABLES})


def _used(frame: DataFrame) -> DataFrame:
    """The ``used`` rows of a checked table, typed (without ``status`` and ``record``)."""
    return frame.where(F.col("status") == validate.USED).drop("status", "record")


def _checked(
    raw: dict[str, DataFrame],
    table: str,
    row_checks: tuple[Transform, ...] = (),
    table_checks: tuple[Transform, ...] = (),
) -> DataFrame:
    """``table`` typed, checked row by row, deduplicated by its keys, checked across rows,
    every row given its status (in :data:`SMALL_TABLE_PARTITIONS` partitions)."""
    steps = (
        validate.type_rows(table),
        *row_checks,
        validate.check_keys(table),
        *table_checks,
        validate.finish,
    )
    return reduce(DataFrame.transform, steps, raw[table].coalesce(SMALL_TABLE_PARTITIONS))


def readings_inputs(
    tables: ValidatedTables,
    usage_config: dict[str, Any],
    window: RunWindow,
    run_started_at: datetime,
) -> Inputs:
    """What the pass over the readings needs: the raw readings, the valid components and
    install periods, the usage settings, the window and the run's start."""
    return Inputs(
        tables.raw["measurements"],
        tables.used("measuring_component"),
        tables.valid_installs(),
        usage_config,
        window,
        run_started_at,
    )


def count_rows(
    tables: ValidatedTables, readings: DataFrame, readings_read: int | None
) -> dict[str, dict[str, Any]]:
    """Per table: rows read, used, rejected (and by reason), deduplicated, outside_window, in
    one query. ``readings``: the readings with their status, one row per reading or the
    ledger's rows (each standing for ``readings`` of them); ``readings_read``: how many the
    pass read, or None when it read every reading of the input (counted on it then, as the
    small tables' rows read are).

    Fails loudly if the counts do not reconcile; an empty device table is bad input."""
    statuses = {table: tables.with_status(table) for table in SMALL_TABLES}
    statuses["measurements"] = readings
    reads: dict[str, int] = {}
    on_input = list(SMALL_TABLES)
    if readings_read is None:
        on_input.append("measurements")
    else:
        reads["measurements"] = readings_read
    by_status: dict[str, dict[str, int]] = {table: {} for table in statuses}
    for row in _counts(tables, statuses, on_input):
        if row["status"] is None:  # the rows read
            reads[row["table"]] = row["count"]
        else:
            by_status[row["table"]][row["status"]] = row["count"]
    if reads.get("device") == 0:
        raise InputError("table device: no rows")
    return {table: _reconciled(table, reads[table], by_status[table]) for table in statuses}


def _reconciled(table: str, read: int, found: dict[str, int]) -> dict[str, Any]:
    """A table's counts from its rows read and its rows per status; fails loudly unless
    every row read has exactly one status."""
    reasons = {k: v for k, v in sorted(found.items()) if k not in validate.NOT_REJECTED}
    entry = {
        "read": read,
        "used": found.get(validate.USED, 0),
        "rejected": sum(reasons.values()),
        "deduplicated": found.get(validate.DEDUPLICATED, 0),
        "outside_window": found.get(validate.OUTSIDE_WINDOW, 0),
        "rejected_by_reason": reasons,
    }
    accounted = sum(entry[s] for s in ("used", "rejected", "deduplicated", "outside_window"))
    if accounted != entry["read"]:
        raise RuntimeError(f"table {table}: counts do not reconcile: {entry}")
    return entry


def _weighed(frame: DataFrame, table: str, status: Column) -> DataFrame:
    """(table, status, weight) per row of ``frame``: the rows a ledger row stands for, or 1."""
    weight = F.col(READINGS) if READINGS in frame.columns else F.lit(1)
    return frame.select(
        F.lit(table).alias("table"), status.alias("status"), weight.cast("long").alias("weight")
    )


def _status_counts(frames: list[DataFrame]) -> DataFrame:
    """(table, status, count) of the rows of :func:`_weighed` ``frames``, in one aggregation."""
    return union_all(frames).groupBy("table", "status").agg(F.sum("weight").alias("count"))


def _counts(
    tables: ValidatedTables, statuses: dict[str, DataFrame], on_input: list[str]
) -> list[Any]:
    """(table, status, count) of every table in ``statuses``, and (table, None, rows read)
    of the tables ``on_input`` (0 for an empty one), in one query; when it fails, each small
    table's are asked alone, so that a file that cannot be read is named by its own table
    (else the readings')."""
    reads = [_weighed(tables.raw[table], table, F.lit(None).cast("string")) for table in on_input]
    counted = [_weighed(frame, table, F.col("status")) for table, frame in statuses.items()]
    with tables.failures_named(), read_failures_named("measurements"):
        found = _status_counts([*counted, *reads]).collect()
    empty = set(on_input) - {row["table"] for row in found if row["status"] is None}
    return [*found, *({"table": t, "status": None, "count": 0} for t in sorted(empty))]


def rejects(tables: ValidatedTables, readings: DataFrame) -> DataFrame:
    """All rejected rows: table, reason and the original row as JSON (``readings``: the
    ledger, whose row stands for that many identical rejects, or one row per reading)."""
    frames = []
    statuses = {table: tables.with_status(table) for table in SMALL_TABLES}
    for table, frame in {**statuses, "measurements": readings}.items():
        rejected = frame.where(~F.col("status").isin(*validate.NOT_REJECTED))
        if READINGS in frame.columns:  # a ledger row stands for that many identical rejects
            copies = F.array_repeat(F.lit(1), F.col(READINGS).cast("int"))
            rejected = rejected.withColumn("_copy", F.explode(copies))
        frames.append(
            rejected.select(F.lit(table).alias("table"), F.col("status").alias("reason"), "record")
        )
    return union_all(frames)
