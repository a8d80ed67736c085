"""A run's readings' ledger: the stored days reused, the planned blocks computed and stored.

:func:`readings_ledger` lists the input's day partitions of the run's read range with their
files, reads what the store recorded of them, asks :func:`jobs.ledger.plan.plan` what to
compute, and computes each block from the state the day before it ended with: the settled
days' rows and states are committed to the store, the other days' rows alone written under
the run's work directory. It returns the run's ledger: the stored days read back in one
partition-pruned scan, the others from the work directory.

Nothing is stored when the input is not partitioned by day, or when a day partition holds
readings of another day: the whole read range is then computed in one pass.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dependencies.fence import NO_FENCE, Fence
from dependencies.hadoop_fs import HadoopFs
from dependencies.logging import LOGGER_NAME
from dependencies.run_window import RunWindow, midnight
from dependencies.tables import MEASURED_DATE, read_failures_named
from dependencies.transforms import union_all
from jobs import usage
from jobs.ledger.compute import (
    Inputs,
    block_rows,
    changed_fingerprints,
    day_states,
    fleet_fingerprint,
    moved_states,
    unstored_ledger,
    without_day_state,
)
from jobs.ledger.plan import (
    ALL,
    FLEET_CHANGED,
    STATE_MOVED,
    Block,
    Files,
    Provenance,
    StoredDay,
    passes,
    plan,
    span,
)
from jobs.ledger.store import ROWS, STATES, LedgerTables
from jobs.usage import COMPONENT, PARTITION, READING_DAY, READINGS

# The meaning of a day's rows and state. Raise it with any change to what they hold (the
# pass in :mod:`jobs.usage`, the checks of :mod:`jobs.validate`, the state kept here): stored
# days of another version are computed again. ``tests/test_ledger_version.py`` fails when the
# sample's rows change while this does not; an edit that changes no row costs nothing.
LEDGER_VERSION = 1
# Run-window settings: they choose which days a run reads, not what a day's rows are.
NOT_SHAPING_USAGE = ("lookback_days",)
# A block computed for some components names at most this many of their devices.
NAMED_DEVICES = 20
NOT_BY_DAY = "the input is not partitioned by day"
NO_LOOKBACK = "usage.lookback_days is 0"
MISFILED = "a day partition holds readings of other days"


@dataclass
class LedgerReuse:
    """What the run did with the store: the days it reused, and each part it computed
    (days, components, why)."""

    mode: str
    reused: list[str] = field(default_factory=list)
    computed: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """For the run report: the mode, the reused days and the computed parts."""
        return {"mode": self.mode, "reused_days": self.reused, "computed": self.computed}


def part_words(part: dict[str, Any]) -> str:
    """A computed part of :class:`LedgerReuse` in words: its days, its components (and the
    first of their devices, when it computed some) and why."""
    devices = f" of {', '.join(part['devices'])}" if part.get("devices") else ""
    return f"{part['days']} ({part['components']} components{devices}: {part['reason']})"


def shaping_hash(usage_config: dict[str, Any]) -> str:
    """The hash of the ledger's version and of the usage settings that shape a day's rows."""
    settings = {k: v for k, v in usage_config.items() if k not in NOT_SHAPING_USAGE}
    text = json.dumps({"version": LEDGER_VERSION, "usage": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def input_days(spark: SparkSession, measurements_path: str, window: RunWindow) -> dict[str, Files]:
    """The input's day partitions the run reads (its read range, and the day after the run
    date, whose first reading may close its last interval), each with its files, listed
    through the input's own file system (another bucket or store than the output's)."""
    first, last = window.read_start_date.isoformat(), window.read_end_date.isoformat()
    fs = HadoopFs(spark, measurements_path)
    days = {}
    for name in fs.children(measurements_path):
        key, _, day = name.partition("=")
        if key == MEASURED_DATE and _is_iso_date(day) and first <= day <= last:
            days[day] = tuple(fs.files(f"{measurements_path}/{name}"))
    return dict(sorted(days.items()))


def _is_iso_date(text: str) -> bool:
    try:
        return date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def unstored(inputs: Inputs, days: str, why: str) -> tuple[DataFrame, None, LedgerReuse]:
    """The run's ledger computed from every reading of its read range, kept nowhere; the
    readings it read are every reading of the input, counted with the run's other counts
    (None: not counted here)."""
    logging.getLogger(LOGGER_NAME).info("readings ledger: computing every day, not stored: %s", why)
    outcome = LedgerReuse("unstored", computed=[{"days": days, "components": ALL, "reason": why}])
    return unstored_ledger(inputs), None, outcome


def readings_ledger(
    spark: SparkSession,
    inputs: Inputs,
    output_path: str,
    input_path: str,
    run_id: str,
    full_refresh: bool,
    work: str,
    fence: Fence = NO_FENCE,
) -> tuple[DataFrame, int | None, LedgerReuse]:
    """The run's ledger of readings (:func:`jobs.usage.run_ledger`), the number of readings
    read (None when the run read every reading of the input: they are counted on it with the
    run's other counts), and what was reused and computed. Uses and updates the store when
    the input is partitioned by day; ``work`` is the run's own directory for what it
    computes, ``fence`` checks each commit to the store."""
    window = inputs.window
    whole_range = f"{window.read_start_date}..{window.run_date}"
    if MEASURED_DATE not in inputs.raw.columns:
        return unstored(inputs, whole_range, NOT_BY_DAY)
    if inputs.usage_config["lookback_days"] < 1:
        return unstored(inputs, whole_range, NO_LOOKBACK)
    files = input_days(spark, f"{input_path.rstrip('/')}/measurements", window)
    update = Update(spark, inputs, LedgerTables(spark, output_path, run_id, fence), work)
    outcome = update.run(files, full_refresh)
    if update.misfiled():
        return unstored(inputs, span(list(files)), MISFILED)
    logging.getLogger(LOGGER_NAME).info(
        "readings ledger: reused %d days%s; computed %s",
        len(outcome.reused),
        f" ({span(outcome.reused)})" if outcome.reused else "",
        "; ".join(part_words(part) for part in outcome.computed) or "nothing",
    )
    ledger = update.rows().transform(without_day_state).transform(usage.run_ledger(window))
    return ledger, update.read_count(), outcome


class Update:
    """One run's update of the store: the planned blocks computed in order."""

    def __init__(self, spark: SparkSession, inputs: Inputs, store: LedgerTables, work: str) -> None:
        self.spark, self.inputs, self.store, self.work = spark, inputs, store, work
        self.provenance = Provenance(
            shaping_hash(inputs.usage_config), fleet_fingerprint(inputs.components, inputs.installs)
        )
        self.days: list[str] = []
        # Per day, what the store holds of it as this run leaves it, and what it recorded.
        self.known: dict[str, StoredDay] = {}
        self.changed: dict[str, StoredDay] = {}
        # The rows of the days this run may not store (if any), as written under its work
        # directory, and per day computed by this run, its facts.
        self.unsettled: DataFrame | None = None
        self.facts: dict[str, dict[str, int]] = {}

    # -- the run ---------------------------------------------------------------------------
    def run(self, files: dict[str, Files], full_refresh: bool) -> LedgerReuse:
        """Compute the planned blocks; commit the settled days' records; vacuum."""
        self.days = list(files)
        self.files = files
        run_date = self.inputs.window.run_date.isoformat()
        own = [d for d in self.days if d <= run_date]
        self.store.remove_former()
        self.known = {} if full_refresh else self.store.stored_days(own)
        blocks = plan(self.days, run_date, files, self.known, self.provenance, full_refresh)
        fleet_changed = self._fleet_changed([b for b in blocks if FLEET_CHANGED in b.reasons])
        outcome = LedgerReuse("incremental")
        computed: set[str] = set()
        for group in passes(blocks, self.days):
            if group[0].components == ALL:
                self._compute_all([day for block in group for day in block.days])
                for block in group:
                    reason = "; ".join(block.reasons)
                    part = {"days": block.span, "components": ALL, "reason": reason}
                    outcome.computed.append(part)
                    computed.update(block.days)
            else:
                (block,) = group
                part, days = self._compute_changed(block, fleet_changed.get(block.days[0]))
                if part:
                    outcome.computed.append(part)
                    computed.update(days)
        outcome.reused = [d for d in own if d not in computed]
        self.store.record(self.changed)
        self.store.vacuum_now_and_then()
        return outcome

    def _settled(self, day: str) -> bool:
        """Whether ``day`` can be stored: it ended before the run began, and is not after
        the run date (whose readings after the window's end are outside this run)."""
        ended = midnight(date.fromisoformat(day)) + timedelta(days=1)
        return (
            ended <= self.inputs.run_started_at and day <= self.inputs.window.run_date.isoformat()
        )

    def _previous(self, day: str) -> str | None:
        position = self.days.index(day)
        return self.days[position - 1] if position else None

    def _state_hash(self, day: str | None) -> int | None:
        """The hash of the state ``day`` ends with, as this run leaves it."""
        if day is None:
            return None
        if day in self.facts:
            return self.facts[day]["state_hash"]
        return self.known[day].state_hash

    def _entering(self, day: str | None) -> DataFrame | None:
        """The state each component entered ``day``'s successor with."""
        return None if day is None else self.store.read(STATES, [day])

    def _fleet_changed(self, blocks: list[Block]) -> dict[str, DataFrame]:
        """Per block (by its first day), the (day, component) whose fingerprint there no
        longer matches, read for all ``blocks`` at once."""
        if not blocks:
            return {}
        mismatched = (
            self.store.read(STATES, [d for b in blocks for d in b.days])
            .transform(changed_fingerprints(self.inputs.components, self.inputs.installs))
            .cache()
        )
        return {b.days[0]: mismatched.where(F.col(PARTITION).isin(*b.days)) for b in blocks}

    def _compute_all(self, days: list[str]) -> None:
        """Compute every component's rows over consecutive ``days`` in one pass: the settled
        days' rows and states committed to the store, then the others' rows alone (nothing
        continues from them in this run) under the run's work directory."""
        settled = [d for d in days if self._settled(d)]
        unsettled = [d for d in days if not self._settled(d)]
        previous = self._previous(days[0])
        entering = self._entering(previous)
        both = bool(settled and unsettled)
        if both and entering is not None:
            # Cut from the store's states table: a commit to it would drop the kept pass.
            entering = entering.localCheckpoint()
        rows = self._block_rows(days, entering)
        if both:  # kept (memory, then disk) for its two writes
            rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
        if settled:
            self._commit_block(settled, rows, entering, previous)
        if unsettled:
            self._work_block(unsettled, rows.where(F.col(PARTITION).isin(*unsettled)))
        if both:
            rows.unpersist()

    def _block_rows(self, days: list[str], entering: DataFrame | None) -> DataFrame:
        """Every component's rows over consecutive ``days``, continuing from ``entering``."""
        raw = self.inputs.raw.where(F.col(MEASURED_DATE).cast("string").isin(*days))
        chain_start = midnight(date.fromisoformat(days[0]))
        return block_rows(self.inputs.with_raw(raw), entering, chain_start)

    def _compute_changed(
        self, block: Block, fleet_changed: DataFrame | None
    ) -> tuple[dict[str, Any], list[str]]:
        """Compute reusable days again for the components that changed (if any): those whose
        fingerprint changed on any day of ``block`` (``fleet_changed``: day, component) and,
        on its first day, those whose entering state moved. From the first day one of them
        changed, their rows are computed again in one chain through the block's days, the
        others' kept as stored. Returns the computed part and its days (empty when nothing
        changed: the days are recorded as holding for the fleet and state as they are now)."""
        first = block.days[0]
        before_block = self._previous(first)
        sets = []
        if fleet_changed is not None:
            sets.append(fleet_changed.select(PARTITION, COMPONENT, F.lit(FLEET_CHANGED)))
        if (
            STATE_MOVED in block.reasons
            and self._state_hash(before_block) != self.known[first].entered_with
        ):
            moved = self.store.read(STATES, [first]).transform(
                moved_states(self._entering(before_block))
            )
            sets.append(moved.select(F.lit(first), COMPONENT, F.lit(STATE_MOVED)))
        changed = (
            union_all([frame.toDF(PARTITION, COMPONENT, "_reason") for frame in sets]).cache()
            if sets
            else None
        )
        found = self._named(changed) if changed is not None else None
        start = found.pop("first_day") if found is not None else None
        self._recorded_as_they_are([d for d in block.days if start is None or d < start])
        if found is None:
            return {}, []
        days = [d for d in block.days if d >= start]
        previous = self._previous(start)
        entering = self._entering(previous)
        redo = changed.select(COMPONENT).distinct().cache()
        raw = self.inputs.raw.where(F.col(MEASURED_DATE).cast("string").isin(*days))
        raw = raw.join(
            F.broadcast(redo),
            F.trim(raw[COMPONENT].cast("string")).eqNullSafe(redo[COMPONENT]),
            "left_semi",
        )
        only = (
            None if entering is None else entering.join(F.broadcast(redo), COMPONENT, "left_semi")
        )
        rows = block_rows(self.inputs.with_raw(raw), only, midnight(date.fromisoformat(start)))
        kept = self.store.read(ROWS, days)
        rows = rows.unionByName(
            kept.join(F.broadcast(redo), kept[COMPONENT].eqNullSafe(redo[COMPONENT]), "left_anti")
        )
        read = {day: self.known[day].read for day in days}
        self._commit_block(days, rows, entering, previous, read=read)
        return {"days": span(days), **found}, days

    def _recorded_as_they_are(self, days: list[str]) -> None:
        """Checked reusable days that hold for the fleet and state as they are now: their
        records name both (in order: each entered with the state the day before ends with)."""
        for day in days:
            stored = self.known[day]
            entered_with = self._state_hash(self._previous(day))
            if (
                stored.provenance.fleet != self.provenance.fleet
                or stored.entered_with != entered_with
            ):
                self.known[day] = self.changed[day] = replace(
                    stored, provenance=self.provenance, entered_with=entered_with
                )

    def _named(self, components: DataFrame) -> dict[str, Any] | None:
        """Components to compute again, each with its day and why (``_reason``) -> how
        many, the first of their devices by name, the reasons and the first day, in one
        query; None if there are none."""
        devices = components.join(
            self.inputs.components.select(COMPONENT, "device_id"), COMPONENT, "left"
        )
        row = devices.agg(
            F.count_distinct(F.struct(COMPONENT)).alias("components"),
            F.count("*").alias("rows"),
            F.slice(
                F.array_sort(F.collect_set(F.coalesce("device_id", COMPONENT))), 1, NAMED_DEVICES
            ).alias("devices"),
            F.collect_set("_reason").alias("reasons"),
            F.min(PARTITION).alias("first_day"),
        ).first()
        if not row["rows"]:
            return None
        reasons = [r for r in (FLEET_CHANGED, STATE_MOVED) if r in row["reasons"]]
        return {
            "components": row["components"],
            "devices": list(row["devices"]),
            "reason": "; ".join(reasons),
            "first_day": row["first_day"],
        }

    def _commit_block(
        self,
        days: list[str],
        rows: DataFrame,
        entering: DataFrame | None,
        previous: str | None,
        read: dict[str, int] | None = None,
    ) -> None:
        """Commit a block of settled days' rows to the store, then their states computed
        from the rows as committed, and note what it computed (``read``: the readings each
        day read, when the block recomputed only some components)."""
        with read_failures_named("measurements"):
            # Each device's rows side by side in a day's files: a run's merge of them into
            # device-days (jobs.usage.merge_rows) then does most of its work before its shuffle.
            self.store.commit(ROWS, rows.repartition(PARTITION, "device_id"), days)
        committed = self.store.read(ROWS, days)
        states = committed.transform(
            day_states(days, self.inputs.components, self.inputs.installs, entering)
        )
        self.store.commit(STATES, states, days)
        self._note_facts(days, committed, self.store.read(STATES, days))
        entered_with = self._state_hash(previous)
        for day in days:
            facts = self.facts[day]
            if read is not None:
                facts["read"] = read[day]
            self.known[day] = self.changed[day] = StoredDay(
                self.files[day],
                self.provenance,
                facts["read"],
                facts["misfiled"],
                facts["state_hash"],
                entered_with,
            )
            entered_with = facts["state_hash"]

    def _work_block(self, days: list[str], rows: DataFrame) -> None:
        """Write the rows of days this run may not store under its work directory."""
        path = f"{self.work}/{ROWS}"
        with read_failures_named("measurements"):
            rows.write.partitionBy(PARTITION).parquet(path)
        self.unsettled = self.spark.read.schema(rows.schema).parquet(path)
        self._note_facts(days, self.unsettled)

    def _note_facts(
        self, days: list[str], rows: DataFrame, states: DataFrame | None = None
    ) -> None:
        """Per day of a block, in one query: the readings it read (every reading read is in
        exactly one row; carried readings are in none), those stamped on another day, and
        the hash of the state it ends with (if its ``states`` are given)."""
        per_rows = rows.groupBy(PARTITION).agg(
            F.sum(READINGS).alias("read"),
            F.sum(
                F.when(F.col(READING_DAY).cast("string") != F.col(PARTITION), F.col(READINGS))
            ).alias("misfiled"),
            F.lit(None).cast("long").alias("state_hash"),
        )
        if states is not None:
            per_states = states.groupBy(PARTITION).agg(
                F.lit(None).cast("long").alias("read"),
                F.lit(None).cast("long").alias("misfiled"),
                F.bit_xor("hash").alias("state_hash"),
            )
            per_rows = per_rows.unionByName(per_states)
        found = {
            row[PARTITION]: row
            for row in per_rows.groupBy(PARTITION)
            .agg(*[F.max(c).alias(c) for c in ("read", "misfiled", "state_hash")])
            .collect()
        }
        for day in days:
            row = found.get(day)
            self.facts[day] = {
                key: (row[key] if row is not None else None) or 0
                for key in ("read", "misfiled", "state_hash")
            }

    # -- the run's view --------------------------------------------------------------------
    def misfiled(self) -> bool:
        """Whether a day of the run holds readings stamped on another day."""
        return any(
            (self.facts[d]["misfiled"] if d in self.facts else self.known[d].misfiled)
            for d in self.days
        )

    def rows(self) -> DataFrame:
        """The rows of the run's days: the stored ones in one scan of the store, the others
        (the days after the run date, and those still going on) from its work directory."""
        settled = [d for d in self.days if d in self.known]
        parts = [self.store.read(ROWS, settled)] if settled else []
        if self.unsettled is not None:
            parts.append(self.unsettled)
        if not parts:
            return usage_rows_of_nothing(self.inputs)
        return parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])

    def read_count(self) -> int:
        """Readings read over the run's days."""
        return sum(
            self.facts[d]["read"] if d in self.facts else self.known[d].read for d in self.days
        )


def usage_rows_of_nothing(inputs: Inputs) -> DataFrame:
    """The rows of no readings (a run whose read range has no day partition)."""
    return block_rows(inputs.with_raw(inputs.raw.limit(0)), None, inputs.window.read_start)
