"""The readings' ledger computed: from readings to a block of days' rows and states.

The pass over the readings (:func:`jobs.usage.readings_rows`) folds a run's readings into
small rows per input day partition, component and day. Those rows do not depend on the run
date: a component's chain of readings continues from day to day (its last valid reading
closes the next day's first interval), so a block of days can be computed alone from the
state the day before it ended with (:func:`block_rows`), and :func:`jobs.usage.run_ledger`
turns the rows of a run's read range into exactly what a run reading only that range
computes. :func:`day_states` gives, per day and component, the state its next day continues
from. Built-in Spark functions only; readings never reach the driver.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from dependencies.run_window import RunWindow
from dependencies.tables import read_failures_named
from dependencies.transforms import Transform
from jobs import usage, validate
from jobs.usage import COMPONENT, PARTITION

# The state a component's next day continues from.
STATE = ("last_at", "last_value", "used", "run_since")
# What a block's rows keep of each component's day, for its state (:func:`_day_state`): its
# latest valid reading (instant and value), the latest end of a zero run, its earliest
# interval start. The run's ledger merges the rows without them.
DAY_STATE = ("_last_at", "_last_value", "_run_break", "_min_start")
# What fingerprints a component's day: its component row ...
ATTRIBUTES = ("device_id", "component_type", "reading_type", "interval_minutes", "register_max")
# ... and its device's install periods.
PERIOD = ("installed_at", "removed_at", "has_generation")


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

    def with_raw(self, raw: DataFrame) -> Inputs:
        """These inputs with other raw measurements (some of them)."""
        return replace(self, raw=raw)


def checked_readings(inputs: Inputs, carried: DataFrame | None = None) -> DataFrame:
    """The raw readings, each with its status (and the ``carried`` readings they continue
    from, if any, shuffled with them)."""
    check = validate.check_measurements(
        inputs.components, inputs.window, inputs.run_started_at, carried
    )
    return inputs.raw.transform(check)


def unstored_rows(inputs: Inputs) -> DataFrame:
    """The readings' rows of the run's whole read range, in one pass, kept nowhere."""
    return checked_readings(inputs).transform(
        usage.readings_rows(
            inputs.components, inputs.installs, inputs.usage_config, inputs.window.read_start
        )
    )


def unstored_ledger(inputs: Inputs) -> DataFrame:
    """The run's ledger of readings, computed from every reading of its read range. The
    rows are computed here, once (:func:`jobs.usage.run_ledger` reads them twice: the
    readings before B apart), and kept on the executors (memory, then disk)."""
    with read_failures_named("measurements"):
        rows = unstored_rows(inputs).localCheckpoint()
    return rows.transform(usage.run_ledger(inputs.window))


def carried_readings(entering: DataFrame) -> DataFrame:
    """A state (per component, :data:`STATE`) -> the reading each component continues from,
    as a checked reading carrying its count of valid readings and where its zero run stands."""
    return entering.where(F.col("last_at").isNotNull()).select(
        COMPONENT,
        F.col("last_at").alias("measured_at"),
        F.col("last_value").alias("value"),
        F.lit(validate.USED).alias("status"),
        F.lit(None).cast("string").alias("record"),
        F.lit(None).cast("string").alias(PARTITION),
        F.col("used").alias(usage.CARRIED_USED),
        F.col("run_since").alias(usage.CARRIED_RUN_SINCE),
    )


def _day_state() -> list[Column]:
    """The aggregates of :data:`DAY_STATE`, over a component's intervals of a day."""
    valid = F.col("status") == validate.USED
    columns = (
        F.max(F.when(valid, F.col("measured_at"))),
        F.max_by(F.when(valid, F.col("value")), F.when(valid, F.col("measured_at"))),
        F.max(usage.RUN_BREAK),
        F.min("start"),
    )
    return [column.alias(name) for name, column in zip(DAY_STATE, columns, strict=True)]


def without_day_state(rows: DataFrame) -> DataFrame:
    """A block's rows as the run's ledger merges them: without :data:`DAY_STATE`."""
    return rows.drop(*DAY_STATE)


def block_rows(inputs: Inputs, entering: DataFrame | None, chain_start: datetime) -> DataFrame:
    """The rows of a block of days whose raw readings are ``inputs.raw``, with each
    component's :data:`DAY_STATE`, continuing each component's chain from the state
    ``entering`` (None: the chains begin here), the block beginning at ``chain_start``."""
    carried = None if entering is None else carried_readings(entering)
    return checked_readings(inputs, carried).transform(
        usage.readings_rows(
            inputs.components, inputs.installs, inputs.usage_config, chain_start, _day_state()
        )
    )


def fingerprints(present: DataFrame, components: DataFrame, installs: DataFrame) -> DataFrame:
    """(partition, component, min_start, ...: one row per partition and component) -> the
    same rows with their ``fingerprint`` there: the component's row and its device's valid
    install periods clipped to [min_start, the day's end) (the only install times the day's
    intervals can fall in); an unknown component has its own."""
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
    # The other columns of a row are the same on each of its periods: taken as they are.
    carried = [c for c in present.columns if c not in (PARTITION, COMPONENT)]
    grouped = (
        keyed.join(F.broadcast(periods), overlap, "left")
        .groupBy(PARTITION, COMPONENT, *ATTRIBUTES)
        .agg(
            *[F.first(c).alias(c) for c in carried],
            F.sort_array(F.collect_list(F.when(F.col("_device").isNotNull(), clipped))).alias(
                "_periods"
            ),
        )
    )
    return grouped.select(
        PARTITION, COMPONENT, *carried, F.xxhash64(*ATTRIBUTES, "_periods").alias("fingerprint")
    )


def fleet_fingerprint(components: DataFrame, installs: DataFrame) -> int:
    """One number for the whole fleet's component rows and install periods: when it is what
    a stored day was computed with, no component's fingerprint there can have changed."""
    periods = installs.groupBy("device_id").agg(
        F.sort_array(F.collect_list(F.struct(*PERIOD))).alias("_periods")
    )
    prints = components.join(periods, "device_id", "left").select(
        F.xxhash64(COMPONENT, *ATTRIBUTES, "_periods").alias("_print")
    )
    return prints.agg(F.bit_xor("_print")).first()[0] or 0


def _state_hash() -> Column:
    return F.xxhash64(F.col(COMPONENT), *[F.col(c) for c in STATE])


def _per_day(rows: DataFrame) -> DataFrame:
    """Per (partition, component) of a block's rows: what its state takes from that day."""
    return rows.groupBy(PARTITION, COMPONENT).agg(
        F.max("_last_at").alias("last_at"),
        F.max_by("_last_value", "_last_at").alias("last_value"),
        F.sum(F.when(F.col("status") == validate.USED, F.col(usage.READINGS))).alias("used"),
        F.max("_run_break").alias("run_since"),
        F.min("_min_start").alias("min_start"),
    )


def _day_list(days: list[str]) -> Column:
    return F.array(*[F.lit(d) for d in days])


def _by_position() -> Window:
    """A component's days in the block's order, its entering state (-1) first."""
    return Window.partitionBy(COMPONENT).orderBy("_position")


def _present(days: list[str], per_day: DataFrame, entering: DataFrame | None) -> DataFrame:
    """Each component's days with rows in the block (``per_day``: their numbers and
    fingerprint), at their ``_position`` in ``days``, and its entering state at -1."""
    position = F.array_position(_day_list(days), F.col(PARTITION)) - 1
    present = per_day.where(position >= 0).select(
        COMPONENT,
        position.cast("int").alias("_position"),
        *STATE,
        "min_start",
        F.lit(True).alias("present"),
        "fingerprint",
        F.lit(None).cast("long").alias("hash"),
    )
    if entering is None:
        return present
    start = entering.select(
        COMPONENT,
        F.lit(-1).alias("_position"),
        *STATE,
        F.lit(None).cast("timestamp").alias("min_start"),
        F.lit(False).alias("present"),
        F.lit(None).cast("long").alias("fingerprint"),
        "hash",
    )
    return present.unionByName(start)


def _each_day(days: list[str], present: DataFrame) -> DataFrame:
    """Rows of :func:`_present` -> every day from a component's first to the block's last,
    each with the state carried so far (a day without rows carries its last one on), and
    ``_since``, the latest end of a zero run so far."""
    so_far = _by_position().rowsBetween(Window.unboundedPreceding, 0)
    carried = present.select(
        COMPONENT,
        "_position",
        "present",
        "min_start",
        "fingerprint",
        F.col("hash").alias("_entering_hash"),
        F.max("last_at").over(so_far).alias("last_at"),
        F.last("last_value", ignorenulls=True).over(so_far).alias("last_value"),
        F.least(
            F.lit(2).cast("long"), F.coalesce(F.sum("used").over(so_far), F.lit(0).cast("long"))
        ).alias("used"),
        F.max("run_since").over(so_far).alias("_since"),
        F.lead("_position", 1, len(days)).over(_by_position()).alias("_next"),
    )
    # Each day up to the next with rows: the first is the day itself, the others had none.
    each_day = F.posexplode(F.sequence(F.col("_position"), F.col("_next") - 1))
    first = F.col("_offset") == 0
    return carried.select("*", each_day.alias("_offset", "_day_position")).select(
        COMPONENT,
        F.col("_day_position").alias("_position"),
        F.when(
            F.col("_day_position") >= 0, F.element_at(_day_list(days), F.col("_day_position") + 1)
        ).alias(PARTITION),
        *[F.when(first, F.col(c)).alias(c) for c in ("min_start", "fingerprint", "_entering_hash")],
        (F.col("present") & first).alias("present"),
        "last_at",
        "last_value",
        "used",
        "_since",
    )


def _hashed(each_day: DataFrame) -> DataFrame:
    """Rows of :func:`_each_day` -> the kept ones of the block's days, each with its state's
    run since, its hash and the hash of the state the day before handed on."""
    day_start = F.to_timestamp(F.col(PARTITION).cast("date"))
    state = each_day.withColumn(
        "run_since", F.when(F.col("_since") >= day_start, F.col("_since"))
    ).withColumn("hash", F.coalesce(F.col("_entering_hash"), _state_hash()))
    # A component is in a day's state once it has had a valid reading (or readings that
    # day): the same rows however far back the computation began.
    kept = F.col("present") | F.col("last_at").isNotNull() | F.col("_entering_hash").isNotNull()
    return (
        state.withColumn("_kept", kept)
        .withColumn(
            "entered_with", F.lag(F.when(F.col("_kept"), F.col("hash"))).over(_by_position())
        )
        .where((F.col("_position") >= 0) & F.col("_kept"))
        .select(
            PARTITION,
            COMPONENT,
            *STATE,
            "hash",
            "entered_with",
            "present",
            "min_start",
            "fingerprint",
        )
    )


def day_states(
    days: list[str], components: DataFrame, installs: DataFrame, entering: DataFrame | None
) -> Transform:
    """A block's rows -> per day of the block (``days``) and component: the state its next
    day continues from, its hash and the hash of the state it entered the day with, whether
    it had rows that day, its earliest interval start and its fingerprint there. The state is
    carried from each day a component had rows (or entered with) to the days up to its next:
    one window over the days with rows, not every component on every day."""

    def transform(rows: DataFrame) -> DataFrame:
        per_day = fingerprints(_per_day(rows), components, installs)
        return _hashed(_each_day(days, _present(days, per_day, entering)))

    return transform


def changed_fingerprints(components: DataFrame, installs: DataFrame) -> Transform:
    """Stored states (with their fingerprints) -> (partition, component) of those whose
    component row or install periods no longer give the stored fingerprint."""

    def transform(states: DataFrame) -> DataFrame:
        current = fingerprints(
            states.where("present").select(PARTITION, COMPONENT, "min_start"), components, installs
        ).select(
            F.col(PARTITION).alias("_day"),
            F.col(COMPONENT).alias("_component"),
            F.col("fingerprint").alias("_now"),
        )
        same = (F.col(PARTITION) == F.col("_day")) & F.col(COMPONENT).eqNullSafe(
            F.col("_component")
        )
        return (
            states.where("present")
            .join(current, same, "left")
            .where(~F.col("fingerprint").eqNullSafe(F.col("_now")))
            .select(PARTITION, COMPONENT)
        )

    return transform


def moved_states(previous: DataFrame) -> Transform:
    """A day's stored states -> the components whose state entering the day differs from
    the one ``previous`` (the state of the day before, as it is now) hands on."""

    def transform(states: DataFrame) -> DataFrame:
        now = previous.select(F.col(COMPONENT).alias("_component"), F.col("hash").alias("_now"))
        return (
            states.select(COMPONENT, "entered_with")
            .join(now, F.col(COMPONENT).eqNullSafe(F.col("_component")), "full")
            .where(~F.col("entered_with").eqNullSafe(F.col("_now")))
            .select(F.coalesce(COMPONENT, "_component").alias(COMPONENT))
            .distinct()
        )

    return transform
