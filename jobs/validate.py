"""Validation: type every input row and give it exactly one status.

A row's ``status`` is ``used``, ``deduplicated``, ``outside_window`` or a reject reason; the
first failing check names the reason. Rejected rows keep the original row as JSON in
``record``. Every step is a ``DataFrame -> DataFrame`` function.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from dependencies.run_window import RunWindow
from dependencies.tables import CORRUPT_RECORD, MEASURED_DATE, TABLES
from dependencies.transforms import Transform

USED = "used"
DEDUPLICATED = "deduplicated"
OUTSIDE_WINDOW = "outside_window"
NOT_REJECTED = (USED, DEDUPLICATED, OUTSIDE_WINDOW)

READING_TYPES = ("CUMULATIVE", "INTERVAL")
CUSTOMER_CLASSES = ("RESIDENTIAL", "COMMERCIAL", "INDUSTRIAL")
KEYS = {
    "device": ("device_id",),
    "measuring_component": ("measuring_component_id",),
    "install_event": ("install_event_id",),
    "measurements": ("measuring_component_id", "measured_at"),
}
RAW = "_raw"
# The input's day partition a reading was read from (null when the input is not partitioned).
PARTITION = "partition"
# The end of an install period that has not been removed.
NEVER = "9999-12-31"


def flag(frame: DataFrame, condition: SparkColumn, reason: str) -> DataFrame:
    """Give ``reason`` to the still-valid rows where ``condition`` holds."""
    return frame.withColumn("status", F.coalesce(F.col("status"), F.when(condition, F.lit(reason))))


def type_rows(table: str) -> Transform:
    """Type each contract column, keep what is needed to rebuild the original row, and flag
    rows that do not parse: ``malformed_row``, ``missing_required``, ``bad_timestamp``,
    ``bad_number``, ``bad_boolean``.

    ``_raw`` holds only the values typing may change (text to parse, untrimmed text, columns
    outside the contract): a Parquet reading stored with the contract's types carries no copy
    of itself through the shuffle."""
    columns = TABLES[table]
    type_reasons = {
        "timestamp": "bad_timestamp",
        "double": "bad_number",
        "int": "bad_number",
        "boolean": "bad_boolean",
    }

    def transform(raw: DataFrame) -> DataFrame:
        present = [c for c in columns if c.name in raw.columns]
        contract = {c.name: c.type for c in present}
        kept = {name: _changed_by_typing(raw, name, contract.get(name)) for name in raw.columns}
        # First each value typed and each column's blankness, once per row; then the status
        # from them: a parse (text to timestamp or number) the status tests again is not
        # repeated, since Spark does not merge a projection that would copy it.
        typed = raw.select(
            F.struct(
                *[value.alias(name) for name, value in kept.items() if value is not None]
            ).alias(RAW),
            *[_typed(raw, c.name, c.type).alias(c.name) for c in present],
            *[F.lit(None).cast(c.type).alias(c.name) for c in columns if c not in present],
            *[_blank_as_read(raw, c.name).alias(f"_blank_{c.name}") for c in present],
        )
        blank = {c.name: F.col(f"_blank_{c.name}") for c in present}
        malformed = F.col(f"{RAW}.{CORRUPT_RECORD}").isNotNull()  # the line as read, kept
        status = F.when(malformed, F.lit("malformed_row")).when(
            _any([blank[c.name] for c in present if c.required]), F.lit("missing_required")
        )
        for reason in dict.fromkeys(type_reasons.values()):
            unparsed = [
                ~blank[c.name] & F.col(c.name).isNull()
                for c in present
                if type_reasons.get(c.type) == reason
            ]
            if reason == "bad_number":
                unparsed += [_not_finite(F.col(c.name)) for c in present if c.type == "double"]
            status = status.when(_any(unparsed), F.lit(reason))
        return typed.select(RAW, *[c.name for c in columns], status.alias("status")).withMetadata(
            RAW, {"columns": raw.columns}
        )

    return transform


def check_components(frame: DataFrame) -> DataFrame:
    """Flag components with an unknown reading type or a non-positive interval or register."""
    return (
        frame.transform(
            lambda f: flag(f, ~F.col("reading_type").isin(*READING_TYPES), "invalid_value")
        )
        .transform(lambda f: flag(f, F.col("interval_minutes") <= 0, "invalid_value"))
        .transform(lambda f: flag(f, F.col("register_max") <= 0, "invalid_value"))
    )


def check_installs(frame: DataFrame) -> DataFrame:
    """Flag install events with an unknown customer class or removed before installed."""
    return flag(frame, ~F.col("customer_class").isin(*CUSTOMER_CLASSES), "invalid_value").transform(
        lambda f: flag(f, F.col("removed_at") <= F.col("installed_at"), "removed_before_installed")
    )


def check_measurement_values(run_started_at: datetime) -> Transform:
    """Flag negative readings, and readings stamped after the run started (clock errors)."""

    def transform(frame: DataFrame) -> DataFrame:
        frame = flag(frame, F.col("value") < 0, "negative_value")
        return flag(frame, F.col("measured_at") > F.lit(run_started_at), "future_timestamp")

    return transform


def check_reference(column: str, known: DataFrame, key: str, reason: str) -> Transform:
    """Flag rows whose ``column`` is not a ``key`` of the valid rows of ``known``."""

    def transform(frame: DataFrame) -> DataFrame:
        keys = known.select(F.col(key).alias("_known_key"), F.lit(True).alias("_known"))
        joined = frame.join(F.broadcast(keys), frame[column] == keys["_known_key"], "left")
        return flag(joined, F.col("_known").isNull(), reason).drop("_known_key", "_known")

    return transform


def check_keys(table: str) -> Transform:
    """Among valid rows sharing a key: identical copies after the first are
    ``deduplicated``; copies that differ are all ``duplicate_key``."""
    keys = KEYS[table]
    fields = [c.name for c in TABLES[table]]

    def transform(frame: DataFrame) -> DataFrame:
        # Both windows are partitioned by the key alone (one shuffle): the valid rows are
        # picked inside them.
        same_key = Window.partitionBy(*keys)
        valid = F.col("status").isNull()
        versions = F.size(F.collect_set(F.when(valid, F.struct(*fields))).over(same_key))
        frame = flag(frame, versions > 1, "duplicate_key")
        valid_first = same_key.orderBy(F.col("status").isNotNull(), *fields)
        return flag(frame, F.row_number().over(valid_first) > 1, DEDUPLICATED)

    return transform


def check_overlaps(frame: DataFrame) -> DataFrame:
    """Flag an install period that overlaps an earlier kept period of its device.

    Each device's valid periods are walked in time order (ties by id); a period is kept when
    it starts at or after the end of the last kept one, so a rejected period never causes a
    later one to be rejected too."""
    device = Window.partitionBy("device_id")
    periods = F.array_sort(
        F.collect_list(
            F.when(
                F.col("status").isNull(),
                F.struct(
                    F.col("installed_at").alias("start"),
                    F.col("install_event_id").alias("id"),
                    F.coalesce("removed_at", F.lit(NEVER).cast("timestamp")).alias("end"),
                ),
            )
        ).over(device)
    )
    start = F.struct(
        F.lit(None).cast("timestamp").alias("kept_until"),
        F.array().cast("array<string>").alias("overlapping"),
    )

    def walk(state: SparkColumn, period: SparkColumn) -> SparkColumn:
        overlaps = period["start"] < state["kept_until"]
        return F.struct(
            F.when(overlaps, state["kept_until"]).otherwise(period["end"]).alias("kept_until"),
            F.when(overlaps, F.array_append(state["overlapping"], period["id"]))
            .otherwise(state["overlapping"])
            .alias("overlapping"),
        )

    overlapping = F.aggregate(periods, start, walk)["overlapping"]
    return flag(
        frame, F.array_contains(overlapping, F.col("install_event_id")), "overlapping_install"
    )


def check_install_window(window: RunWindow) -> Transform:
    """Install periods that end before the read range or start after W are not needed."""

    def transform(frame: DataFrame) -> DataFrame:
        outside = (F.col("removed_at") <= F.lit(window.read_start)) | (
            F.col("installed_at") >= F.lit(window.window_end)
        )
        return flag(frame, outside, OUTSIDE_WINDOW)

    return transform


def check_readings(window: RunWindow) -> Transform:
    """Duplicates and the read range's edges, per component in time order.

    Same (component, instant) and value: one reading, the copies ``deduplicated``; different
    values: all ``conflicting_duplicate``. Readings after W or before the read range are
    ``outside_window``. (Which readings before B are needed is settled with the intervals:
    :func:`jobs.usage.to_intervals`.)

    One window over a component's readings in time order: the readings at one instant are
    its peers (a range frame), so no window is partitioned per instant.
    """

    def transform(frame: DataFrame) -> DataFrame:
        frame = flag(
            frame,
            (F.col("measured_at") < F.lit(window.read_start))
            | (F.col("measured_at") > F.lit(window.window_end)),
            OUTSIDE_WINDOW,
        )
        in_time_order = Window.partitionBy("measuring_component_id").orderBy("measured_at")
        same_instant = in_time_order.rangeBetween(Window.currentRow, Window.currentRow)
        up_to_this_row = in_time_order.rowsBetween(Window.unboundedPreceding, Window.currentRow)
        up_to_this_instant = in_time_order.rangeBetween(
            Window.unboundedPreceding, Window.currentRow
        )
        valid = F.col("status").isNull()
        valid_value = F.when(valid, F.col("value"))
        conflicting = F.min(valid_value).over(same_instant) != F.max(valid_value).over(same_instant)
        # Valid copies of this instant after this row: every copy but the instant's last is one.
        copies_after = F.count(F.when(valid, True)).over(up_to_this_instant) - F.count(
            F.when(valid, True)
        ).over(up_to_this_row)
        frame = frame.select(
            "*", conflicting.alias("_conflicting"), copies_after.alias("_copies_after")
        )
        frame = flag(frame, valid & F.col("_conflicting"), "conflicting_duplicate")
        return flag(frame, F.col("_copies_after") > 0, DEDUPLICATED).drop(
            "_conflicting", "_copies_after"
        )

    return transform


def check_measurements(
    components: DataFrame,
    window: RunWindow,
    run_started_at: datetime,
    carried: DataFrame | None = None,
) -> Transform:
    """Raw readings -> one row per reading with its status (and reject record), its
    component, instant and value, and the day partition it was read from (``partition``,
    null when the input is not partitioned by day). Lazy: the ledger reads it once.

    ``carried``: readings already checked (each with its status, and columns of its own,
    kept; null on the raw readings), shuffled with the raw ones and passed through as they
    are: a block of days continues each component's chain from them."""
    final = ["measuring_component_id", "measured_at", "value", "status", "record", PARTITION]

    def transform(raw: DataFrame) -> DataFrame:
        partition = F.col(f"{RAW}.{MEASURED_DATE}") if MEASURED_DATE in raw.columns else F.lit(None)
        checked = (
            raw.transform(type_rows("measurements"))
            .withColumn(PARTITION, partition.cast("string"))
            .transform(check_measurement_values(run_started_at))
            .transform(
                check_reference(
                    "measuring_component_id",
                    components,
                    "measuring_component_id",
                    "unknown_component",
                )
            )
        )
        own: list[str] = []
        if carried is not None:
            own = [c for c in carried.columns if c not in final]
            checked = checked.unionByName(carried, allowMissingColumns=True)
        return (
            # One shuffle by component: the duplicate, window and usage windows all reuse it.
            checked.repartition("measuring_component_id")
            .transform(check_readings(window))
            .transform(finish)
            .select(*final, *own)
        )

    return transform


def finish(frame: DataFrame) -> DataFrame:
    """Valid rows become ``used``; rejects carry their original row as JSON in ``record``
    (every column as read, nulls included, and the unparsed line if the row was malformed)."""
    status = F.coalesce(F.col("status"), F.lit(USED))
    kept = frame.schema[RAW].dataType.fieldNames()
    raw_columns = frame.schema[RAW].metadata["columns"]
    as_read = {name: _as_read(frame, name, name in kept) for name in raw_columns}
    row = F.struct(
        *[value.alias(name) for name, value in as_read.items() if name != CORRUPT_RECORD]
    )
    malformed = F.struct(*[value.alias(name) for name, value in as_read.items()])
    original = F.when(F.col(f"{RAW}.{CORRUPT_RECORD}").isNull(), _json(row)).otherwise(
        _json(malformed)
    )
    return (
        frame.withColumn("status", status)
        .withColumn("record", F.when(~status.isin(*NOT_REJECTED), original))
        .drop(RAW)
    )


def _as_read(frame: DataFrame, name: str, kept: bool) -> SparkColumn:
    """Column ``name`` as read, from what :func:`type_rows` kept of it and its typed value."""
    if not kept:
        return F.col(name)  # typing kept it as stored
    if name in frame.columns and frame.schema[name].dataType.simpleString() == "string":
        return F.coalesce(
            F.col(f"{RAW}.{name}"), F.col(name)
        )  # kept only where trimming changed it
    return F.col(f"{RAW}.{name}")


def _json(column: SparkColumn) -> SparkColumn:
    return F.to_json(column, {"ignoreNullFields": "false"})


def _typed(raw: DataFrame, name: str, type_name: str) -> SparkColumn:
    """Column ``name`` of ``raw`` as ``type_name``: as is when stored so, else parsed from
    its text (null where it does not parse)."""
    column = raw[name]
    if raw.schema[name].dataType.simpleString() == type_name:
        return F.trim(column) if type_name == "string" else column
    text = F.trim(column.cast("string"))
    return text if type_name == "string" else text.try_cast(type_name)


def _changed_by_typing(raw: DataFrame, name: str, type_name: str | None) -> SparkColumn | None:
    """What of column ``name`` must be kept to rebuild the row as read: nothing when typing
    keeps it as stored; for stored text of a text column, the text only where trimming
    changed it; otherwise the value as read."""
    stored = raw.schema[name].dataType.simpleString()
    if name == CORRUPT_RECORD or type_name is None or stored != type_name:
        return raw[name]
    if type_name == "string":
        return F.when(raw[name] != F.trim(raw[name]), raw[name])
    return None


def _blank_as_read(raw: DataFrame, name: str) -> SparkColumn:
    """Whether column ``name`` of the row as read is missing. Only text can be blank; a typed
    value (Parquet) is missing only when null, so it is never formatted as text per row."""
    if raw.schema[name].dataType.simpleString() == "string":
        return _blank(raw[name])
    return raw[name].isNull()


def _blank(column: SparkColumn) -> SparkColumn:
    return column.isNull() | (F.trim(column.cast("string")) == "")


def _not_finite(column: SparkColumn) -> SparkColumn:
    return F.isnan(column) | (F.abs(column) == float("inf"))


def _any(conditions: list[SparkColumn]) -> SparkColumn:
    result = F.lit(False)
    for condition in conditions:
        result = result | condition
    return result
