"""The readings' ledger kept between runs, as three Delta tables under ``<output>/_ledger/``.

- ``rows``: the rows of each stored day (:func:`jobs.usage.by_component_day`, with each
  component's :data:`jobs.ledger.compute.DAY_STATE`), partitioned by the input's day partition;
- ``states``: per stored day and component, the state its next day continues from
  (:func:`jobs.ledger.compute.day_states`), partitioned the same way;
- ``days``: a row per stored day: what it was derived from (its input files, the ledger's
  version and usage settings as a hash, the fleet's fingerprint), the readings it read, the
  hash of the state it ends with and of the one it continued from, and the run that stored it.

A run replaces the days it computed with one ``replaceWhere`` commit per block of days to
``rows`` and then ``states``, and records them in ``days`` last, in one commit; each commit
carries the run's id in its ``userMetadata``. A run killed between them leaves days whose
record still names what they were derived from before, so the next run computes them
again. Only settled days (ended before the run began, not after its run date) are ever
committed. Old files go by ``VACUUM`` (every :data:`VACUUM_EVERY` commits), which keeps a
week of time travel. The store is a cache: deleting it changes nothing but time.
"""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dependencies.fence import NO_FENCE, Fence
from dependencies.hadoop_fs import HadoopFs
from dependencies.publish import DELTA_LOG, delta_version, vacuum
from jobs.ledger.plan import Files, Provenance, StoredDay
from jobs.usage import PARTITION

STORE = "_ledger"
ROWS, STATES, DAYS = "rows", "states", "days"
# What the store held before it was kept as Delta tables (JSON manifests, Parquet blocks):
# nothing reads it any more, and the first run that finds it removes it.
FORMER = ("manifests", "blocks")
# A table is vacuumed each time this many commits have been made to it: VACUUM lists the
# table's files, which costs more than a day's commit. It keeps the files of the last week's
# versions (Delta's default ``delta.deletedFileRetentionDuration``): a week of time travel.
VACUUM_EVERY = 10
# The store is read by day partition only: a table created without per-file column statistics
# (which data skipping on other columns would use) costs each commit nothing to collect them.
TABLE_PROPERTIES = {"delta.dataSkippingNumIndexedCols": "0"}
DAYS_SCHEMA = (
    "day string, files array<struct<path: string, size: long, modified: long>>, "
    "shaping string, fleet long, read long, misfiled long, state_hash long, "
    "entered_with long, stored_by string"
)


def store_path(output_path: str) -> str:
    """Where the ledger store of an output path lives."""
    return f"{output_path.rstrip('/')}/{STORE}"


def _in(column: str, days: list[str]) -> str:
    """A SQL predicate: ``column`` is one of ``days`` (ISO dates, checked)."""
    return f"{column} IN ({', '.join(repr(d) for d in days)})"


def _stored_day(row: Any) -> StoredDay:
    files: Files = tuple((f["path"], f["size"], f["modified"]) for f in row["files"])
    return StoredDay(
        files,
        Provenance(row["shaping"], row["fleet"]),
        row["read"],
        row["misfiled"],
        row["state_hash"],
        row["entered_with"],
    )


class LedgerTables:
    """The store's tables under one output path, as one run reads and commits them (each
    commit checked by ``fence``: a run that lost its lock changes nothing)."""

    def __init__(
        self, spark: SparkSession, output_path: str, run_id: str, fence: Fence = NO_FENCE
    ) -> None:
        self.spark, self.path, self.run_id, self.fence = (
            spark,
            store_path(output_path),
            run_id,
            fence,
        )
        self.fs = HadoopFs(spark, self.path)
        self.versions = {name: self._version(name) for name in (ROWS, STATES, DAYS)}

    def _version(self, name: str) -> int:
        return delta_version(self.fs, self._table(name)) or 0

    def remove_former(self) -> None:
        """Remove what the store held before it was kept as Delta tables, if anything."""
        for name in FORMER:
            if self.fs.exists(self._table(name)):
                self.fence.check(f"removing the ledger's former {name}")
                self.fs.delete(self._table(name))

    def _table(self, name: str) -> str:
        return f"{self.path}/{name}"

    def _exists(self, name: str) -> bool:
        return self.fs.exists(f"{self._table(name)}/{DELTA_LOG}")

    def stored_days(self, days: list[str]) -> dict[str, StoredDay]:
        """What the store recorded of ``days`` (those it holds)."""
        if not days or not self._exists(DAYS):
            return {}
        found = self.spark.read.format("delta").load(self._table(DAYS))
        rows = found.where(F.col("day").isin(*days)).collect()
        return {row["day"]: _stored_day(row) for row in rows}

    def read(self, name: str, days: list[str]) -> DataFrame:
        """The stored ``rows`` or ``states`` of ``days``, in one partition-pruned scan."""
        return (
            self.spark.read.format("delta")
            .load(self._table(name))
            .where(F.col(PARTITION).isin(*days))
        )

    def _metadata(self, days: list[str]) -> str:
        return json.dumps({"run_id": self.run_id, "days": days})

    def commit(self, name: str, frame: DataFrame, days: list[str]) -> None:
        """Replace ``days`` of table ``name`` (``rows`` or ``states``) by ``frame``'s rows."""
        self.fence.check(f"storing the ledger's {name} of {days[0]}..{days[-1]}")
        (
            frame.where(F.col(PARTITION).isin(*days))
            .write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", _in(PARTITION, days))
            .option("userMetadata", self._metadata(days))
            .options(**TABLE_PROPERTIES)  # taken when the commit creates the table
            .partitionBy(PARTITION)
            .save(self._table(name))
        )

    def record(self, days: dict[str, StoredDay]) -> None:
        """Record what ``days`` were derived from (after their rows and states), in one commit."""
        if not days:
            return
        self.fence.check("recording the ledger's days")
        records = [
            (
                day,
                [{"path": p, "size": s, "modified": m} for p, s, m in stored.files],
                stored.provenance.shaping,
                stored.provenance.fleet,
                stored.read,
                stored.misfiled,
                stored.state_hash,
                stored.entered_with,
                self.run_id,
            )
            for day, stored in sorted(days.items())
        ]
        (
            self.spark.createDataFrame(records, DAYS_SCHEMA)
            .coalesce(1)
            .write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", _in("day", sorted(days)))
            .option("userMetadata", self._metadata(sorted(days)))
            .save(self._table(DAYS))
        )

    def vacuum_now_and_then(self) -> None:
        """Vacuum each table that passed a multiple of :data:`VACUUM_EVERY` commits since
        this run began: remove the files no version of the last week needs."""
        for name, before in self.versions.items():
            if self._version(name) // VACUUM_EVERY > before // VACUUM_EVERY:
                self.fence.check(f"vacuuming the ledger's {name}")
                vacuum(self.spark, self._table(name))
