"""The readings' ledger kept between runs: a cache of the one pass over the readings.

The pass over the readings (:func:`jobs.usage.readings_rows`) folds each input day partition
``measured_date=D`` into small rows per component and day. Those rows do not depend on the
run date: a component's chain of readings continues from day to day (its last valid reading
closes the next day's first interval), and :func:`jobs.usage.run_ledger` turns the rows of a
run's read range into exactly what a run reading only that range computes. So each day's
rows are kept under ``<output>/_ledger/``, with the state its next day continues from (per
component: its last valid reading, how many it has had, where its zero run stands), and a
manifest of everything they were derived from:

- the day's input files (path, size, modification time) and its row count as read;
- the ledger's version (:data:`LEDGER_VERSION`) and the ``usage`` settings that shape it;
- per component, a fingerprint of its component row and of its device's install periods
  over the time the day's intervals cover;
- the hash of the state the day continued from.

A run reuses every day whose manifest still matches and computes the rest: new days, days
whose files changed, the components whose rows or installs changed (only those), and the
components whose state changed because an earlier day was computed again. Everything is
computed again with ``--full-refresh``, when the ledger's version or the usage settings
change, or when the input is not partitioned by day. Deleting the store changes nothing but time.

Safety: a day's rows and state are written in full before its manifest, and a manifest is
replaced by a rename; a day without a readable manifest is computed again, and a day whose
manifest says it continued from another state than its predecessor's is checked component
by component. Stored days never hold a reading stamped after the run started (a day is kept
only once it has ended), nor readings of other days (then nothing is reused). The store
lives under the output path, so the run lock covers it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from dependencies.fence import NO_FENCE, Fence
from dependencies.logging import LOGGER_NAME
from dependencies.publish import HadoopFs
from dependencies.run_window import RunWindow, midnight
from dependencies.tables import MEASURED_DATE, count_read, read_failures_named
from jobs import usage, validate
from jobs.usage import COMPONENT, PARTITION, READING_DAY, READINGS

STORE = "_ledger"
MANIFESTS = "manifests"
BLOCKS = "blocks"
FORMAT = 1
# The meaning of a day's rows and state. Raise it with any change to what they hold (the
# pass in :mod:`jobs.usage`, the checks of :mod:`jobs.validate`, the state kept here): stored
# days of another version are computed again. ``tests/test_ledger_version.py`` fails when the
# sample's rows change while this does not; an edit that changes no row costs nothing.
LEDGER_VERSION = 1
# Run-window settings: they choose which days a run reads, not what a day's rows are.
NOT_SHAPING_USAGE = ("lookback_days",)
# The state a component's next day continues from.
STATE = ("last_at", "last_value", "used", "run_since")
# Why the day after the run date is always computed (and never stored).
AFTER_RUN_DATE = "the day after the run date: only its readings up to the window's end count"
# A part computed for some components names at most this many of their devices.
NAMED_DEVICES = 20
ATTRIBUTES = ("device_id", "component_type", "reading_type", "interval_minutes", "register_max")


@dataclass
class Outcome:
    """What the run did with the store: the days it reused, and each part it computed
    (days, components, why)."""

    mode: str
    reused: list[str] = field(default_factory=list)
    computed: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """For the run report: the mode, the reused days and the computed parts."""
        return {"mode": self.mode, "reused_days": self.reused, "computed": self.computed}


@dataclass(frozen=True)
class Inputs:
    """What every pass over readings needs: the raw measurements (as extracted), the checked
    components, the valid install periods (whatever the run window), the usage settings,
    the run window and the run's start."""

    raw: DataFrame
    components: DataFrame
    installs: DataFrame
    usage_config: dict[str, Any]
    window: RunWindow
    run_started_at: datetime


def store_path(output_path: str) -> str:
    """Where the ledger store of an output path lives."""
    return f"{output_path.rstrip('/')}/{STORE}"


def shaping_hash(usage_config: dict[str, Any]) -> str:
    """The hash of the ledger's version and of the usage settings that shape a day's rows."""
    settings = {k: v for k, v in usage_config.items() if k not in NOT_SHAPING_USAGE}
    text = json.dumps(
        {"format": FORMAT, "version": LEDGER_VERSION, "usage": settings}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def files_hash(files: list[tuple[str, int, int]]) -> str:
    """The hash of a day's input files (path, size, modification time)."""
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16]


def _span(days: list[str]) -> str:
    return days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"


def readings_ledger(
    spark: SparkSession,
    inputs: Inputs,
    output_path: str,
    input_path: str,
    run_id: str,
    full_refresh: bool,
    fence: Fence = NO_FENCE,
) -> tuple[DataFrame, int, Outcome]:
    """The run's ledger of readings (:func:`jobs.usage.run_ledger`), the number of readings
    read, and what was reused and computed. Uses and updates the store when the input is
    partitioned by day (each write of a manifest, and the removal of blocks, checked by
    ``fence``: a run that lost its lock changes nothing in the store)."""
    log = logging.getLogger(LOGGER_NAME)
    window = inputs.window
    if MEASURED_DATE not in inputs.raw.columns or inputs.usage_config["lookback_days"] < 1:
        why = (
            "the input is not partitioned by day"
            if MEASURED_DATE not in inputs.raw.columns
            else "usage.lookback_days is 0"
        )
        log.info("readings ledger: computing every day, not stored: %s", why)
        read = count_read(inputs.raw, "measurements")
        return (
            unstored_ledger(inputs),
            read,
            Outcome(
                "unstored",
                computed=[
                    {
                        "days": f"{window.read_start_date}..{window.run_date}",
                        "components": "all",
                        "reason": why,
                    }
                ],
            ),
        )
    store = Store(spark, store_path(output_path), run_id, inputs, fence)
    days = store.input_days(f"{input_path.rstrip('/')}/measurements")
    outcome = store.update(days, full_refresh)
    if store.misfiled(days):
        why = "a day partition holds readings of other days"
        log.info("readings ledger: computing every day, not reused: %s", why)
        outcome = Outcome(
            "unstored", computed=[{"days": _span(days), "components": "all", "reason": why}]
        )
        return unstored_ledger(inputs), count_read(inputs.raw, "measurements"), outcome
    log.info(
        "readings ledger: reused %d days%s; computed %s",
        len(outcome.reused),
        f" ({_span(outcome.reused)})" if outcome.reused else "",
        "; ".join(
            f"{part['days']} ({part['components']} components"
            f"{' of ' + ', '.join(part['devices']) if part.get('devices') else ''}"
            f": {part['reason']})"
            for part in outcome.computed
        )
        or "nothing",
    )
    rows = store.rows(days)
    return rows.transform(usage.run_ledger(window)), store.read_count(days), outcome


def checked_readings(inputs: Inputs, raw: DataFrame | None = None) -> DataFrame:
    """The raw readings (``inputs.raw``, or ``raw``: some of them), each with its status."""
    check = validate.check_measurements(inputs.components, inputs.window, inputs.run_started_at)
    return (inputs.raw if raw is None else raw).transform(check)


def unstored_rows(inputs: Inputs) -> DataFrame:
    """The readings' rows of the run's whole read range, in one pass, kept nowhere."""
    return checked_readings(inputs).transform(
        usage.readings_rows(
            inputs.components, inputs.installs, inputs.usage_config, inputs.window.read_start
        )
    )


def unstored_ledger(inputs: Inputs) -> DataFrame:
    """The run's ledger of readings, computed from every reading of its read range."""
    return unstored_rows(inputs).transform(usage.run_ledger(inputs.window))


def fingerprints(present: DataFrame, components: DataFrame, installs: DataFrame) -> DataFrame:
    """(partition, component, min_start) -> its fingerprint there: the component's row and
    its device's valid install periods clipped to [min_start, the day's end) (the only
    install times the day's intervals can fall in); an unknown component has its own."""
    periods = installs.select(
        F.col("device_id").alias("_device"),
        "installed_at",
        F.coalesce("removed_at", F.lit(validate.NEVER).cast("timestamp")).alias("_removed"),
        "has_generation",
    )
    day_end = F.to_timestamp(F.date_add(F.col(PARTITION).cast("date"), 1))
    keyed = present.join(F.broadcast(components.select(COMPONENT, *ATTRIBUTES)), COMPONENT, "left")
    overlap = (
        (keyed["device_id"] == periods["_device"])
        & keyed["min_start"].isNotNull()
        & (periods["installed_at"] < day_end)
        & (periods["_removed"] > keyed["min_start"])
    )
    clipped = F.struct(
        F.greatest("installed_at", "min_start").alias("from"),
        F.least("_removed", day_end).alias("until"),
        "has_generation",
    )
    grouped = (
        keyed.join(F.broadcast(periods), overlap, "left")
        .groupBy(PARTITION, COMPONENT, *ATTRIBUTES)
        .agg(
            F.sort_array(F.collect_list(F.when(F.col("_device").isNotNull(), clipped))).alias(
                "_periods"
            )
        )
    )
    return grouped.select(
        PARTITION, COMPONENT, F.xxhash64(*ATTRIBUTES, "_periods").alias("fingerprint")
    )


def fleet_print(components: DataFrame, installs: DataFrame) -> int:
    """One number for the whole fleet's component rows and install periods: when it is what
    a stored day was computed with, no component's fingerprint there can have changed."""
    periods = installs.groupBy("device_id").agg(
        F.sort_array(
            F.collect_list(F.struct("installed_at", "removed_at", "has_generation"))
        ).alias("_periods")
    )
    prints = components.join(periods, "device_id", "left").select(
        F.xxhash64(COMPONENT, *ATTRIBUTES, "_periods").alias("_print")
    )
    return prints.agg(F.bit_xor("_print")).first()[0] or 0


def _state_hash() -> Column:
    return F.xxhash64(F.col(COMPONENT), *[F.col(c) for c in STATE])


class Store:
    """The ledger store of one output path, as one run uses it."""

    def __init__(
        self,
        spark: SparkSession,
        path: str,
        run_id: str,
        inputs: Inputs,
        fence: Fence = NO_FENCE,
    ) -> None:
        self.spark, self.path, self.run_id, self.inputs = spark, path, run_id, inputs
        self.fence = fence
        self.fs = HadoopFs(spark, path)
        self.shaping = shaping_hash(inputs.usage_config)
        self.fleet = fleet_print(inputs.components, inputs.installs)
        self.files: dict[str, str] = {}
        # Per day: the manifest as found, then as this run leaves it (stored or not).
        self.manifests: dict[str, dict[str, Any] | None] = {}
        self.blocks = 0
        self.log = logging.getLogger(LOGGER_NAME)

    # -- what is there -------------------------------------------------------------------
    def input_days(self, measurements_path: str) -> list[str]:
        """The input's day partitions the run reads (its read range, and the day after the
        run date, whose first reading may close its last interval), with their files' hashes."""
        window = self.inputs.window
        first, last = window.read_start_date.isoformat(), window.window_end.date().isoformat()
        days = []
        # The input's own file system: it may be another bucket, or another store, than the
        # output's.
        input_fs = HadoopFs(self.spark, measurements_path)
        for name in input_fs.children(measurements_path):
            if name.startswith(f"{MEASURED_DATE}=") and first <= name.split("=", 1)[1] <= last:
                day = name.split("=", 1)[1]
                self.files[day] = files_hash(input_fs.files(f"{measurements_path}/{name}"))
                days.append(day)
        return sorted(days)

    def _manifest_path(self, day: str) -> str:
        return f"{self.path}/{MANIFESTS}/{PARTITION}={day}.json"

    def manifest(self, day: str) -> dict[str, Any] | None:
        """The day's manifest, if it is there, readable, and its files are there."""
        try:
            text = self.fs.read_text(self._manifest_path(day))
            found = json.loads(text) if text else None
        except (ValueError, OSError):
            return None
        if not isinstance(found, dict) or found.get("format") != FORMAT:
            return None
        if found.get("read") and not all(
            self.fs.exists(found.get(key) or "") for key in ("rows", "state")
        ):
            return None
        return found

    def stale_reason(self, day: str, found: dict[str, Any] | None) -> str | None:
        """Why a stored day cannot be reused at all, or None."""
        if found is None:
            return "not in the store"
        if found["shaping"] != self.shaping:
            return "the ledger's version or the usage settings changed"
        if found["files"] != self.files[day]:
            return "its input files changed (a late or rewritten file)"
        return None

    # -- the run ---------------------------------------------------------------------------
    def update(self, read_days: list[str], full_refresh: bool) -> Outcome:
        """Bring the run's days up to date: reuse what still matches, compute the rest. The
        day after the run date is computed for this run only, and never stored (only its
        readings up to W's end count, the rest is outside this run's window)."""
        outcome = Outcome("incremental")
        last = self.inputs.window.run_date.isoformat()
        days, after = [d for d in read_days if d <= last], [d for d in read_days if d > last]
        found = {day: (None if full_refresh else self.manifest(day)) for day in days}
        stale = {
            day: ("--full-refresh" if full_refresh else self.stale_reason(day, found[day]))
            for day in days
        }
        # Fingerprints are compared per component only where the fleet changed since.
        changed = self.changed_components(
            [d for d in days if stale[d] is None and found[d]["fleet"] != self.fleet], found
        )
        self.manifests = dict(found)
        position = 0
        while position < len(days):
            day = days[position]
            previous = days[position - 1] if position else None
            if stale[day] is not None:
                end = position
                while end + 1 < len(days) and stale[days[end + 1]] is not None:
                    end += 1
                block = days[position : end + 1]
                reasons = sorted({stale[d] for d in block})
                outcome.computed.append(
                    {"days": _span(block), "components": "all", "reason": "; ".join(reasons)}
                )
                position = end + 1
                if position == len(days) and after:
                    # The days after the run date continue this block: one pass for both.
                    outcome.computed.append(
                        {"days": _span(after), "components": "all", "reason": AFTER_RUN_DATE}
                    )
                    block, after = block + after, []
                self.compute(block, previous, None)
                continue
            redo = changed.get(day)
            reason = "their component or install rows changed" if redo is not None else ""
            if (
                previous
                and self.manifests[day]["entered_with"] != self.manifests[previous]["state_hash"]
            ):
                moved = self.moved_states(day, previous).cache()
                if moved.count():
                    redo = moved if redo is None else redo.unionByName(moved).distinct()
                    reason = "; ".join(filter(None, [reason, "an earlier day changed their state"]))
                elif redo is None:  # checked: the day continues from the state now before it
                    self.manifests[day] = {
                        **self.manifests[day],
                        "entered_with": self.manifests[previous]["state_hash"],
                    }
                    self._write_manifest(day, self.manifests[day])
            if redo is None:
                outcome.reused.append(day)
                position += 1
                continue
            redo = redo.cache()
            devices = redo.join(
                self.inputs.components.select(COMPONENT, "device_id"), COMPONENT, "left"
            )
            named = sorted(
                {
                    row["device_id"] or row[COMPONENT]
                    for row in devices.limit(NAMED_DEVICES).collect()
                }
            )
            outcome.computed.append(
                {"days": day, "components": redo.count(), "devices": named, "reason": reason}
            )
            self.compute([day], previous, redo)
            position += 1
        if after:
            self.compute(after, days[-1] if days else None, None)
            outcome.computed.append(
                {"days": _span(after), "components": "all", "reason": AFTER_RUN_DATE}
            )
        self.collect_garbage()
        return outcome

    def changed_components(
        self, days: list[str], found: dict[str, dict[str, Any] | None]
    ) -> dict[str, DataFrame]:
        """Per reusable day, the components whose fingerprint no longer matches (if any)."""
        days = [d for d in days if found[d]["read"]]
        if not days:
            return {}
        stored = self._read_days([found[d]["state"] for d in days]).where("present")
        current = fingerprints(
            stored.select(PARTITION, COMPONENT, "min_start"),
            self.inputs.components,
            self.inputs.installs,
        ).select(
            F.col(PARTITION).alias("_day"),
            F.col(COMPONENT).alias("_component"),
            F.col("fingerprint").alias("_now"),
        )
        same = (F.col(PARTITION) == F.col("_day")) & F.col(COMPONENT).eqNullSafe(
            F.col("_component")
        )
        mismatched = (
            stored.join(current, same, "left")
            .where(~F.col("fingerprint").eqNullSafe(F.col("_now")))
            .select(PARTITION, COMPONENT)
        ).cache()
        counts = {
            row[PARTITION]: row["count"] for row in mismatched.groupBy(PARTITION).count().collect()
        }
        for day in days:  # checked and clean: the day holds for the fleet as it is now
            if (
                day not in counts
                and midnight(date.fromisoformat(day)) + timedelta(days=1)
                <= self.inputs.run_started_at
            ):
                self._write_manifest(day, {**found[day], "fleet": self.fleet})
        return {day: mismatched.where(F.col(PARTITION) == day).select(COMPONENT) for day in counts}

    def moved_states(self, day: str, previous: str) -> DataFrame:
        """The components whose state entering ``day`` differs from the one it was stored with."""
        entered = self._read(self.manifests[day]["state"]).select(COMPONENT, "entered_with")
        now = self._read(self.manifests[previous]["state"]).select(
            F.col(COMPONENT).alias("_component"), F.col("hash").alias("_now")
        )
        return (
            entered.join(now, F.col(COMPONENT).eqNullSafe(F.col("_component")), "full")
            .where(~F.col("entered_with").eqNullSafe(F.col("_now")))
            .select(F.coalesce(COMPONENT, "_component").alias(COMPONENT))
            .distinct()
        )

    def _read(self, path: str) -> DataFrame:
        return self.spark.read.parquet(path)

    def _read_days(self, paths: list[str]) -> DataFrame:
        """Several days' stored tables in one read, each row with its day (``partition``)."""
        day = F.regexp_extract(
            F.input_file_name(), f"{PARTITION}=([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})", 1
        )
        return self.spark.read.parquet(*paths).withColumn(PARTITION, day)

    def compute(self, block: list[str], previous: str | None, only: DataFrame | None) -> None:
        """Compute the rows and states of consecutive days ``block`` (of the components in
        ``only``, the others kept as stored) from the state ``previous`` left; store them."""
        inputs = self.inputs
        self.blocks += 1
        directory = f"{self.path}/{BLOCKS}/{self.run_id}-{self.blocks}"
        raw = inputs.raw.where(F.col(MEASURED_DATE).cast("string").isin(*block))
        if only is not None:
            raw = raw.join(
                F.broadcast(only),
                F.trim(raw[COMPONENT].cast("string")).eqNullSafe(only[COMPONENT]),
                "left_semi",
            )
        entering_all = self._read(self.manifests[previous]["state"]) if previous else None
        entering = entering_all
        if entering is not None and only is not None:
            entering = entering.join(F.broadcast(only), COMPONENT, "left_semi")
        checked = checked_readings(inputs, raw)
        if entering is not None:
            carried = entering.where(F.col("last_at").isNotNull()).select(
                COMPONENT,
                F.col("last_at").alias("measured_at"),
                F.col("last_value").alias("value"),
                F.lit(validate.USED).alias("status"),
                F.lit(None).cast("string").alias("record"),
                F.lit(None).cast("string").alias(PARTITION),
                F.col("used").alias(usage.CARRIED_USED),
                F.col("run_since").alias(usage.CARRIED_RUN_SINCE),
            )
            checked = (
                checked.withColumn(usage.CARRIED_USED, F.lit(None).cast("long"))
                .withColumn(usage.CARRIED_RUN_SINCE, F.lit(None).cast("timestamp"))
                .unionByName(carried)
            )
        rows = checked.transform(
            usage.readings_rows(
                inputs.components,
                inputs.installs,
                inputs.usage_config,
                midnight(date.fromisoformat(block[0])),
            )
        )
        if only is not None:  # the other components' rows, as stored
            kept = self._read_days([self.manifests[d]["rows"] for d in block])
            rows = rows.unionByName(
                kept.join(
                    F.broadcast(only), kept[COMPONENT].eqNullSafe(only[COMPONENT]), "left_anti"
                )
            )
        with read_failures_named("measurements"):
            rows.write.partitionBy(PARTITION).parquet(f"{directory}/rows")
        written = self._read(f"{directory}/rows").withColumn(
            PARTITION, F.col(PARTITION).cast("string")
        )
        self.states(block, written, entering_all).write.partitionBy(PARTITION).parquet(
            f"{directory}/state"
        )
        states = self._read(f"{directory}/state").withColumn(
            PARTITION, F.col(PARTITION).cast("string")
        )
        facts = {
            row[PARTITION]: row["state_hash"]
            for row in states.groupBy(PARTITION)
            .agg(F.bit_xor("hash").alias("state_hash"))
            .collect()
        }
        # Every reading read is in exactly one row (carried readings are not): a day's rows
        # count its readings as read, without a second scan of the input.
        read, misfiled = {}, {}
        for row in (
            written.groupBy(PARTITION)
            .agg(
                F.sum(READINGS).alias("read"),
                F.sum(
                    F.when(F.col(READING_DAY).cast("string") != F.col(PARTITION), F.col(READINGS))
                ).alias("misfiled"),
            )
            .collect()
        ):
            read[row[PARTITION]], misfiled[row[PARTITION]] = row["read"], row["misfiled"]
        for position, day in enumerate(block):
            before = self.manifests.get(day) or {}
            entered_from = block[position - 1] if position else previous
            manifest = {
                "format": FORMAT,
                "shaping": self.shaping,
                "fleet": self.fleet,
                "files": self.files[day],
                "read": before["read"] if only is not None else read.get(day, 0),
                "misfiled": misfiled.get(day) or 0,
                "rows": f"{directory}/rows/{PARTITION}={day}",
                "state": f"{directory}/state/{PARTITION}={day}",
                "state_hash": facts.get(day, 0),
                "entered_with": self.manifests[entered_from]["state_hash"]
                if entered_from
                else None,
                "stored_by": self.run_id,
            }
            self.manifests[day] = manifest
            # Never a day still going on, nor the day after the run date (read for this run only).
            if (
                midnight(date.fromisoformat(day)) + timedelta(days=1) <= inputs.run_started_at
                and day <= inputs.window.run_date.isoformat()
            ):
                self._write_manifest(day, manifest)

    def states(self, block: list[str], rows: DataFrame, entering: DataFrame | None) -> DataFrame:
        """Per day of ``block`` and component: the state its next day continues from, its
        hash and the hash of the state it entered the day with, whether it had readings
        that day, its earliest interval start and its fingerprint."""
        per_day = (
            rows.groupBy(PARTITION, COMPONENT)
            .agg(
                F.max("_last_at").alias("last_at"),
                F.max_by("_last_value", "_last_at").alias("last_value"),
                F.sum(F.when(F.col("status") == validate.USED, F.col(READINGS))).alias("used"),
                F.max("_run_break").alias("run_since"),
                F.min("_min_start").alias("min_start"),
            )
            .withColumn("present", F.lit(True))
            .withColumnsRenamed({COMPONENT: "_component", PARTITION: "_day"})
        )
        positions = self.spark.createDataFrame(
            [(d, i) for i, d in enumerate(block)], f"{PARTITION} string, _position int"
        )
        components = per_day.select(F.col("_component").alias(COMPONENT))
        start = None
        if entering is not None:
            start = entering.select(
                COMPONENT,
                F.lit(None).cast("string").alias(PARTITION),
                F.lit(-1).alias("_position"),
                *STATE,
                F.lit(None).cast("timestamp").alias("min_start"),
                F.lit(False).alias("present"),
                "hash",
            )
            components = components.unionByName(entering.select(COMPONENT))
        grid = components.distinct().crossJoin(F.broadcast(positions))
        on = F.col(COMPONENT).eqNullSafe(F.col("_component")) & (F.col(PARTITION) == F.col("_day"))
        filled = grid.join(per_day, on, "left").select(
            COMPONENT,
            PARTITION,
            "_position",
            "last_at",
            "last_value",
            "used",
            "run_since",
            "min_start",
            F.coalesce("present", F.lit(False)).alias("present"),
            F.lit(None).cast("long").alias("hash"),
        )
        if start is not None:
            filled = filled.unionByName(start)
        so_far = (
            Window.partitionBy(COMPONENT)
            .orderBy("_position")
            .rowsBetween(Window.unboundedPreceding, 0)
        )
        since = F.max("run_since").over(so_far)
        day_start = F.to_timestamp(F.col(PARTITION).cast("date"))
        state = filled.select(
            COMPONENT,
            PARTITION,
            "_position",
            "present",
            "min_start",
            F.col("hash").alias("_entering_hash"),
            F.max("last_at").over(so_far).alias("last_at"),
            F.last("last_value", ignorenulls=True).over(so_far).alias("last_value"),
            F.least(
                F.lit(2).cast("long"), F.coalesce(F.sum("used").over(so_far), F.lit(0).cast("long"))
            ).alias("used"),
            F.when(since >= day_start, since).alias("run_since"),
        )
        state = state.withColumn("hash", F.coalesce(F.col("_entering_hash"), _state_hash()))
        in_order = Window.partitionBy(COMPONENT).orderBy("_position")
        # A component is in a day's state once it has had a valid reading (or readings that
        # day): the same rows however far back the computation began.
        kept = F.col("present") | F.col("last_at").isNotNull() | F.col("_entering_hash").isNotNull()
        state = (
            state.withColumn("_kept", kept)
            .withColumn("entered_with", F.lag(F.when(F.col("_kept"), F.col("hash"))).over(in_order))
            .where((F.col("_position") >= 0) & F.col("_kept"))
        )
        present = state.where("present").select(PARTITION, COMPONENT, "min_start")
        prints = fingerprints(present, self.inputs.components, self.inputs.installs).select(
            F.col(PARTITION).alias("_day"), F.col(COMPONENT).alias("_component"), "fingerprint"
        )
        on = (F.col(PARTITION) == F.col("_day")) & F.col(COMPONENT).eqNullSafe(F.col("_component"))
        return state.join(prints, on, "left").select(
            PARTITION,
            COMPONENT,
            *STATE,
            "hash",
            "entered_with",
            "present",
            "min_start",
            "fingerprint",
        )

    def _write_manifest(self, day: str, manifest: dict[str, Any]) -> None:
        target = self._manifest_path(day)
        temporary = f"{self.path}/{MANIFESTS}/_{self.run_id}-{day}.json"
        self.fence.check(f"storing the ledger's day {day}")
        self.fs.write_text(temporary, json.dumps(manifest))
        if self.fs.exists(target):
            self.fs.delete(
                target
            )  # killed here: the day is not in the store, and is computed again
        self.fs.rename(temporary, target)

    def collect_garbage(self) -> None:
        """Delete the blocks no manifest refers to any more (this run's own are kept: its
        unstored days are still read)."""
        self.fence.check("removing the ledger's unused blocks")
        referenced = set()
        for name in self.fs.children(f"{self.path}/{MANIFESTS}"):
            if name.endswith(".json") and not name.startswith("_"):
                text = self.fs.read_text(f"{self.path}/{MANIFESTS}/{name}") or "{}"
                try:
                    referenced.add(
                        json.loads(text).get("rows", "").split(f"/{BLOCKS}/")[-1].split("/")[0]
                    )
                except ValueError:
                    continue
        for name in self.fs.children(f"{self.path}/{BLOCKS}"):
            if name not in referenced and not name.startswith(f"{self.run_id}-"):
                self.fs.delete(f"{self.path}/{BLOCKS}/{name}")

    # -- the run's view --------------------------------------------------------------------
    def misfiled(self, days: list[str]) -> bool:
        """Whether a day of the run holds readings stamped on another day."""
        return any((self.manifests[d] or {}).get("misfiled") for d in days)

    def rows(self, days: list[str]) -> DataFrame:
        """The stored rows of the run's days."""
        paths = [
            self.manifests[d]["rows"] for d in days if self.fs.exists(self.manifests[d]["rows"])
        ]
        if not paths:
            return unstored_rows(replace_raw(self.inputs, self.inputs.raw.limit(0)))
        return self.spark.read.parquet(*paths)

    def read_count(self, days: list[str]) -> int:
        """Readings read over the run's days, as counted on the input."""
        return sum(self.manifests[d]["read"] for d in days)


def replace_raw(inputs: Inputs, raw: DataFrame) -> Inputs:
    """``inputs`` with other raw measurements."""
    return Inputs(
        raw,
        inputs.components,
        inputs.installs,
        inputs.usage_config,
        inputs.window,
        inputs.run_started_at,
    )
