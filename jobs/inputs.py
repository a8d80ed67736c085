"""The four input tables: extract, validate, count and quarantine.

Every input row gets a status: ``used``, ``deduplicated``, ``outside_window`` or the reason
it is rejected (:mod:`jobs.validate`). The small tables are validated here, row by row; the
readings are validated inside the one pass that folds them into the readings' ledger
(:mod:`jobs.ledger`), whose rows say how many readings each stands for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dependencies.frames import Transform, union_all
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
from jobs import validate
from jobs.ledger import Inputs
from jobs.usage import READINGS

# The tables validated row by row, in dependency order (the readings: by the ledger).
SMALL_TABLES = ("device", "measuring_component", "install_event")


@dataclass
class Checked:
    """Every input row with its status; ``used`` rows are the valid input of detection.

    A table's frame has a row per input row, or (the readings' ledger) a ``readings`` column
    saying how many input rows each of its rows stands for."""

    tables: dict[str, DataFrame]

    def used(self, table: str) -> DataFrame:
        """The rows of ``table`` that detection uses, typed."""
        frame = self.tables[table].where(F.col("status") == validate.USED)
        return frame.drop("status", "record")

    def valid_installs(self) -> DataFrame:
        """The install periods that passed every check, whether or not the run window needs
        them (a day's rows do not depend on the run date)."""
        frame = self.tables["install_event"]
        valid = F.col("status").isin(validate.USED, validate.OUTSIDE_WINDOW)
        return frame.where(valid).drop("status", "record")

    def with_measurements(self, measurements: DataFrame) -> Checked:
        """These tables, and ``measurements`` (the ledger, or one row per reading)."""
        return Checked({**self.tables, "measurements": measurements})


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


def validate_tables(raw: dict[str, DataFrame], window: RunWindow) -> Checked:
    """Give every row of the small tables its status, in dependency order (cached: they are
    small, and read by several steps)."""
    checked = Checked({"device": _checked(raw, "device")})
    known_device = validate.check_reference(
        "device_id", checked.used("device"), "device_id", "unknown_device"
    )
    checked.tables["measuring_component"] = _checked(
        raw, "measuring_component", (validate.check_components, known_device)
    )
    checked.tables["install_event"] = _checked(
        raw,
        "install_event",
        (validate.check_installs, known_device),
        (validate.check_overlaps, validate.check_install_window(window)),
    )
    return Checked({table: checked.tables[table].cache() for table in SMALL_TABLES})


def _checked(
    raw: dict[str, DataFrame],
    table: str,
    row_checks: tuple[Transform, ...] = (),
    table_checks: tuple[Transform, ...] = (),
) -> DataFrame:
    """``table`` typed, checked row by row, deduplicated by its keys, checked across rows,
    every row given its status."""
    steps = (
        validate.type_rows(table),
        *row_checks,
        validate.check_keys(table),
        *table_checks,
        validate.finish,
    )
    return reduce(DataFrame.transform, steps, raw[table])


def readings_inputs(
    raw: dict[str, DataFrame],
    checked: Checked,
    usage_config: dict[str, Any],
    window: RunWindow,
    run_started_at: datetime,
) -> Inputs:
    """What the pass over the readings needs: the raw readings, the valid components and
    install periods, the usage settings, the window and the run's start."""
    components = checked.used("measuring_component")
    return Inputs(
        raw["measurements"],
        components,
        checked.valid_installs(),
        usage_config,
        window,
        run_started_at,
    )


def count_rows(
    raw: dict[str, DataFrame],
    checked: Checked,
    tables: tuple[str, ...] = TABLE_NAMES,
    read_counts: dict[str, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per table: rows read (counted on the input as read, or given in ``read_counts``),
    used, rejected (and by reason), deduplicated, outside_window.

    Fails loudly if the counts do not reconcile; an empty device table is bad input."""
    given = read_counts or {}
    reads = {t: given[t] for t in tables if t in given}
    by_status: dict[str, dict[str, int]] = {table: {} for table in tables}
    for row in _counts(raw, checked, tables, [t for t in tables if t not in given]):
        if row["status"] is None:  # the rows read
            reads[row["table"]] = row["count"]
        else:
            by_status[row["table"]][row["status"]] = row["count"]
    if reads.get("device") == 0:
        raise InputError("table device: no rows")
    counts: dict[str, dict[str, Any]] = {}
    for table in tables:
        found = by_status[table]
        reasons = {k: v for k, v in sorted(found.items()) if k not in validate.NOT_REJECTED}
        entry = {
            "read": reads[table],
            "used": found.get(validate.USED, 0),
            "rejected": sum(reasons.values()),
            "deduplicated": found.get(validate.DEDUPLICATED, 0),
            "outside_window": found.get(validate.OUTSIDE_WINDOW, 0),
            "rejected_by_reason": reasons,
        }
        accounted = sum(entry[s] for s in ("used", "rejected", "deduplicated", "outside_window"))
        if accounted != entry["read"]:
            raise RuntimeError(f"table {table}: counts do not reconcile: {entry}")
        counts[table] = entry
    return counts


def _counts(
    raw: dict[str, DataFrame], checked: Checked, tables: tuple[str, ...], to_read: list[str]
) -> list[Any]:
    """(table, status, count) of ``tables``, and (table, None, rows read) of those
    ``to_read``, in one query (the rows a ledger row stands for counted as such); when it
    fails, each table's are asked alone, so that a file that cannot be read is named by its
    own table."""
    statuses: dict[str, DataFrame] = {}
    reads: dict[str, DataFrame] = {}
    for table in tables:
        frame = checked.tables[table]
        weight = F.sum(READINGS) if READINGS in frame.columns else F.count("*")
        statuses[table] = (
            frame.groupBy("status")
            .agg(weight.cast("long").alias("count"))
            .select(F.lit(table).alias("table"), "status", "count")
        )
    for table in to_read:
        reads[table] = (
            raw[table]
            .agg(F.count("*").alias("count"))
            .select(
                F.lit(table).alias("table"), F.lit(None).cast("string").alias("status"), "count"
            )
        )
    try:
        return union_all([*statuses.values(), *reads.values()]).collect()
    except SPARK_ERRORS:
        for table, frame in statuses.items():  # which table failed: a file it cannot read
            if table in reads:
                count_read(raw[table], table)
            with read_failures_named(table):
                frame.collect()
        raise


def rejects(checked: Checked) -> DataFrame:
    """All rejected rows: table, reason and the original row as JSON."""
    frames = []
    for table, frame in checked.tables.items():
        rejected = frame.where(~F.col("status").isin(*validate.NOT_REJECTED))
        if READINGS in frame.columns:  # a ledger row stands for that many identical rejects
            copies = F.array_repeat(F.lit(1), F.col(READINGS).cast("int"))
            rejected = rejected.withColumn("_copy", F.explode(copies))
        frames.append(
            rejected.select(F.lit(table).alias("table"), F.col("status").alias("reason"), "record")
        )
    return union_all(frames)
