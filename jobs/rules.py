"""Theft detection: one pure function per rule, one per confounder, then the score and the
alerts.

Each rule takes the run's :class:`RuleInputs` and its own parameters from the config's
``rules`` section, and returns ``(device_id, metric)`` for the devices where it fires.
A confounder (the config's ``confounders`` section) has the same shape: it returns the
devices where an honest explanation holds, and the rules it ``explains`` there.
:func:`detect` names, weighs and places the findings, each with the confounder that
explains it (``explained_by``, null when none does); :func:`score` combines a device's
unexplained findings into ``1 - prod(1 - weight)`` and keeps the devices at or above
``alert_threshold``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import reduce
from typing import Any

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

from dependencies.config import ConfigError
from dependencies.run_window import RunWindow
from dependencies.transforms import array_median, correlation, union_all
from jobs.usage import HOURS, IMPORT_KWH, MINUTES_PER_DAY, holding_period

WINDOW = "W"
BASELINE = "B"
# The columns of a finding and of an alert, before the window they are about.
FINDING_COLUMNS = ("device_id", "service_point_id", "rule", "weight", "metric", "explained_by")
ALERT_COLUMNS = ("device_id", "service_point_id", "customer_class", "score", "rules")

Rule = Callable[["RuleInputs", dict[str, Any]], DataFrame]


@dataclass(frozen=True)
class RuleInputs:
    """What the rules read, built once per run and shared by all of them (not the published
    evidence table: that is :mod:`jobs.alerts.evidence`).

    ``daily``: usage per (device, day) with its ``period`` (B or W), ``has_data``, the
    standard deviation of the day's interval amounts ``spread``, its coefficient of
    variation ``cv`` and its base load ``base_kwh`` (:func:`_day_base_load`). ``devices``:
    one row per device with its context (service point, class, generation: of its latest
    installed interval in W), its W and B summaries (among them the arrays some rules read:
    W's weekly means, and by day of W or B the day's import (W's days with data) and its
    longest zero run, null where a day has none; and what the confounders read),
    ``comparable``, ``window_baseline_ratio`` = W mean / baseline mean (the spec's r), its
    class's ``class_median_ratio`` and ``class_mad_ratio``, and the class drift
    ``class_drift`` (the spec's m). ``installs`` and ``components``: the valid input tables.
    """

    daily: DataFrame
    devices: DataFrame
    installs: DataFrame
    components: DataFrame
    window: RunWindow

    @classmethod
    def build(
        cls,
        daily_usage: DataFrame,
        components: DataFrame,
        installs: DataFrame,
        window: RunWindow,
        config: dict[str, Any],
    ) -> RuleInputs:
        """Derive the per-day flags and the per-device summaries from daily usage."""
        usage, peers = config["usage"], config["peers"]
        mean = F.col("shape_kwh") / F.col("shape_intervals")
        variance = F.greatest(
            F.col("shape_kwh_squared") / F.col("shape_intervals") - mean * mean, F.lit(0.0)
        )
        daily = (
            daily_usage.withColumn(
                "period",
                F.when(F.col("day") >= F.lit(window.window_start_date), WINDOW).otherwise(BASELINE),
            )
            .withColumn(
                "has_data",
                F.col("present_intervals")
                >= usage["day_has_data_share"] * F.col("expected_intervals"),
            )
            .withColumn("spread", F.sqrt(variance))
            .withColumn("cv", F.when(mean > 0, F.col("spread") / mean))
            .withColumn(
                "base_kwh", _day_base_load(config["confounders"]["BASE_LOAD_HELD"]["lowest_hours"])
            )
        )
        devices = (
            _device_summaries(daily, window, peers, config["confounders"])
            .transform(_with_context(installs))
            .transform(_with_class_drift(peers))
        )
        return cls(daily, devices, installs, components, window)


def _in(period: str, column: SparkColumn | str, with_data: bool = True) -> SparkColumn:
    """``column`` on the days of ``period`` (with data, unless ``with_data`` is False)."""
    condition = F.col("period") == period
    if with_data:
        condition = condition & F.col("has_data")
    return F.when(condition, column if isinstance(column, SparkColumn) else F.col(column))


def _hourly_means(period: str) -> SparkColumn:
    """Mean interval amount per hour of day over ``period``'s days with data (plain sums
    per hour: no per-row array functions)."""
    # The day's arrays, null off the period: one condition per period, not one per hour.
    kwh, intervals = _in(period, "hour_kwh"), _in(period, "hour_intervals")
    sums = [F.sum(kwh[h]) for h in HOURS]
    counts = [F.sum(intervals[h]) for h in HOURS]
    return F.array(*[F.when(n > 0, s / n) for s, n in zip(sums, counts, strict=True)])


def _window_week_means(window: RunWindow) -> SparkColumn:
    """The mean daily import of each week of W (weeks counted from W's start, each over its
    days with data; null for a week without any)."""
    week = F.floor(F.date_diff(F.col("day"), F.lit(window.window_start_date)) / 7)
    weeks = -(-window.window_days // 7)
    return F.array(
        *[F.avg(_in(WINDOW, F.when(week == k, F.col("import_kwh")))) for k in range(weeks)]
    )


def _period_days(period: str, window: RunWindow) -> tuple[Any, int]:
    """The first day of ``period`` and its number of days."""
    if period == WINDOW:
        return window.window_start_date, window.window_days
    return window.baseline_start_date, window.baseline_days


def _by_day(period: str, window: RunWindow, column: SparkColumn) -> SparkColumn:
    """An aggregate: ``column`` on each day of ``period`` with a value, as a map from the
    day's place in ``period`` (0 for its first day). One aggregate that collects, rather than
    one per day: :func:`_day_array` then lays it out by day."""
    first, days = _period_days(period, window)
    position = F.date_diff(F.col("day"), F.lit(first))
    kept = position.between(0, days - 1) & column.isNotNull()
    return F.map_from_entries(F.collect_list(F.when(kept, F.struct(position, column))))


def _day_array(period: str, window: RunWindow, name: str) -> SparkColumn:
    """The map of :func:`_by_day` in column ``name`` -> its values by day of ``period``, in
    order (null for a day without one)."""
    _, days = _period_days(period, window)
    by_place = F.col(name)
    return F.transform(F.sequence(F.lit(0), F.lit(days - 1)), lambda k: by_place[k]).alias(name)


def _day_summaries() -> dict[str, tuple[str, SparkColumn]]:
    """The summaries by day of a period (:func:`_by_day`), by name: the period and the column
    (W's import on its days with data and its longest zero runs, B's zero runs, and B's import
    on its days with data, which the confounders read)."""
    return {
        "window_day_kwh": (WINDOW, _in(WINDOW, "import_kwh")),
        "window_zero_runs": (WINDOW, F.col("longest_zero_run_minutes")),
        "baseline_zero_runs": (BASELINE, F.col("longest_zero_run_minutes")),
        "baseline_day_kwh": (BASELINE, _in(BASELINE, "import_kwh")),
    }


def _device_summaries(
    daily: DataFrame, window: RunWindow, peers: dict[str, Any], confounders: dict[str, Any]
) -> DataFrame:
    share = peers["comparable_share"]
    by_day = _day_summaries()
    summaries = daily.groupBy("device_id").agg(
        F.max(_in(WINDOW, "latest_installed_start", with_data=False)).alias(
            "latest_installed_start"
        ),
        F.count(_in(WINDOW, F.lit(1))).alias("window_days_with_data"),
        F.count(_in(BASELINE, F.lit(1))).alias("baseline_days_with_data"),
        F.avg(_in(WINDOW, "import_kwh")).alias("window_mean_kwh"),
        F.avg(_in(BASELINE, "import_kwh")).alias("baseline_mean_kwh"),
        F.sum(_in(WINDOW, "uninstalled_import_kwh", with_data=False)).alias(
            "uninstalled_import_kwh"
        ),
        F.sum(_in(WINDOW, "rollback_kwh", with_data=False)).alias("rollback_kwh"),
        F.sum(_in(WINDOW, "export_without_generation_kwh", with_data=False)).alias(
            "export_without_generation_kwh"
        ),
        F.sum(_in(WINDOW, "tamper_events", with_data=False)).alias("tamper_events"),
        F.sum(_in(WINDOW, "present_intervals", with_data=False)).alias("window_present_intervals"),
        F.avg(_in(WINDOW, "cv")).alias("window_cv"),
        F.avg(_in(BASELINE, "cv")).alias("baseline_cv"),
        _hourly_means(WINDOW).alias("window_hourly_kwh"),
        _hourly_means(BASELINE).alias("baseline_hourly_kwh"),
        _window_week_means(window).alias("window_week_kwh"),
        *[_by_day(period, window, column).alias(name) for name, (period, column) in by_day.items()],
        *_confounder_summaries(window, confounders),
    )
    comparable = (F.col("window_days_with_data") >= share * window.window_days) & (
        F.col("baseline_days_with_data") >= share * window.baseline_days
    )
    summaries = summaries.select(
        *[
            _day_array(by_day[c][0], window, c) if c in by_day else F.col(c)
            for c in summaries.columns
        ]
    )
    return summaries.select(
        "*",
        *_median_levels(
            window, share, latest_baseline_days(window, confounders["DROP_BEFORE_WINDOW"])
        ),
        comparable.alias("comparable"),
        F.when(
            comparable & (F.col("baseline_mean_kwh") >= peers["min_baseline_kwh"]),
            F.col("window_mean_kwh") / F.col("baseline_mean_kwh"),
        ).alias("window_baseline_ratio"),
    )


def _median_levels(window: RunWindow, share: float, latest_days: int) -> list[SparkColumn]:
    """The median daily import of W, of B's ``latest_days`` latest days (null unless
    ``share`` of them have data) and of B's earlier days, from the summaries' arrays by day."""
    baseline_days = F.col("baseline_day_kwh")
    latest = F.slice(baseline_days, window.baseline_days - latest_days + 1, latest_days)
    earlier = F.slice(baseline_days, 1, window.baseline_days - latest_days)
    latest_seen = F.size(F.filter(latest, lambda kwh: kwh.isNotNull()))
    return [
        array_median(F.col("window_day_kwh")).alias("window_median_kwh"),
        F.when(latest_seen >= share * latest_days, array_median(latest)).alias(
            "latest_baseline_median_kwh"
        ),
        array_median(earlier).alias("earlier_baseline_median_kwh"),
    ]


def latest_baseline_days(window: RunWindow, params: dict[str, Any]) -> int:
    """How many of B's latest days ``DROP_BEFORE_WINDOW`` takes as the level B ended with:
    ``latest_baseline_days``, leaving at least one earlier day of B."""
    return max(1, min(params["latest_baseline_days"], window.baseline_days - 1))


def recent_window_days(window: RunWindow, params: dict[str, Any]) -> int:
    """How many of W's latest days ``DROP_ENDED`` looks at: ``recent_days``, or all of a
    shorter W."""
    return min(params["recent_days"], window.window_days)


def _confounder_summaries(window: RunWindow, confounders: dict[str, Any]) -> list[SparkColumn]:
    """What the confounders read of each device, aggregated with its other summaries (one
    pass over daily usage; B's import on each of its days is among :func:`_day_summaries`):
    the mean per-day base load and spread of W and of B, and the latest
    ``DROP_ENDED.recent_days`` of W (days with data, mean import) with B's mean import on the
    same weekdays."""
    recent_days = recent_window_days(window, confounders["DROP_ENDED"])
    recent_start = window.run_date - timedelta(days=recent_days - 1)
    # Spark's dayofweek: 1 = Sunday .. 7 = Saturday.
    weekdays = sorted(
        {(recent_start + timedelta(days=i)).isoweekday() % 7 + 1 for i in range(recent_days)}
    )
    recent = F.col("has_data") & (F.col("day") >= F.lit(recent_start))
    same_weekdays = F.dayofweek("day").isin(weekdays)
    return [
        F.avg(_in(WINDOW, "base_kwh")).alias("window_base_kwh"),
        F.avg(_in(BASELINE, "base_kwh")).alias("baseline_base_kwh"),
        F.avg(_in(WINDOW, "spread")).alias("window_spread_kwh"),
        F.avg(_in(BASELINE, "spread")).alias("baseline_spread_kwh"),
        F.count(F.when(recent, True)).alias("recent_days_with_data"),
        F.avg(F.when(recent, F.col("import_kwh"))).alias("recent_mean_kwh"),
        F.avg(_in(BASELINE, F.when(same_weekdays, F.col("import_kwh")))).alias(
            "baseline_recent_weekdays_kwh"
        ),
    ]


def _with_context(installs: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """A device's service point, class and generation: those of the install period that holds
    its latest installed interval in W (none when it has no installed interval in W)."""

    def transform(devices: DataFrame) -> DataFrame:
        context = holding_period(
            installs,
            "latest_installed_start",
            "service_point_id",
            "customer_class",
            "has_generation",
        )
        return (
            devices.transform(context)
            .withColumn("has_generation", F.coalesce(F.col("has_generation"), F.lit(False)))
            .drop("_in_period", "latest_installed_start")
        )

    return transform


def _with_class_drift(peers: dict[str, Any]) -> Callable[[DataFrame], DataFrame]:
    """Per customer class, in one window over its devices (the summaries computed once, not
    joined back): the exact median of ``window_baseline_ratio`` and its median absolute
    deviation; ``class_drift`` is the median, or 1 for a class with fewer than
    ``min_class_devices`` ratios (too few to tell a season from theft) or a median of 0. The
    same for the base load (``base_load_ratio``, W / B, of the devices without generation
    that have one): ``class_base_drift``; and for ``latest_level_ratio``, W's median daily
    import over that of B's latest days (of the devices with a ``window_baseline_ratio``):
    ``class_latest_drift``; then ``cohort_drift`` (:func:`_with_cohort_drift`). A device
    without a class has no class numbers."""

    def transform(devices: DataFrame) -> DataFrame:
        in_class = Window.partitionBy("customer_class")

        def per_class(aggregate: SparkColumn) -> SparkColumn:
            return _over_peers(aggregate, in_class)

        ratio, base = F.col("window_baseline_ratio"), F.col("baseline_base_kwh")
        level = F.try_divide(F.col("window_median_kwh"), F.col("latest_baseline_median_kwh"))
        ratios = {
            "base_load_ratio": F.when(
                ~F.col("has_generation") & (base > 0), F.col("window_base_kwh") / base
            ),
            "latest_level_ratio": F.when(ratio.isNotNull(), level),
        }
        return (
            devices.withColumns(ratios)
            .withColumns(
                {
                    "class_devices": per_class(F.count(ratio)),
                    "class_median_ratio": per_class(F.median(ratio)),
                    "_base_devices": per_class(F.count("base_load_ratio")),
                    "_base_median": per_class(F.median("base_load_ratio")),
                    "_latest_devices": per_class(F.count("latest_level_ratio")),
                    "_latest_median": per_class(F.median("latest_level_ratio")),
                }
            )
            .withColumns(
                {
                    "class_mad_ratio": per_class(
                        F.median(F.abs(ratio - F.col("class_median_ratio")))
                    ),
                    "class_drift": _peer_drift(
                        F.col("class_devices"), F.col("class_median_ratio"), peers, F.lit(1.0)
                    ),
                    "peer_class": F.col("class_devices") >= peers["min_class_devices"],
                    "class_base_drift": _peer_drift(
                        F.col("_base_devices"), F.col("_base_median"), peers, F.lit(1.0)
                    ),
                    "class_latest_drift": _peer_drift(
                        F.col("_latest_devices"), F.col("_latest_median"), peers, F.lit(1.0)
                    ),
                }
            )
            .drop("_base_devices", "_base_median", "_latest_devices", "_latest_median")
            .transform(_with_cohort_drift(peers))
        )

    return transform


def _with_cohort_drift(peers: dict[str, Any]) -> Callable[[DataFrame], DataFrame]:
    """``cohort_drift``: the median ``window_baseline_ratio`` of the device's class and
    generation (a site with generation nets its import against the sun, which the season
    moves far more than use), or its ``class_drift`` where that cohort has fewer than
    ``min_class_devices`` ratios (or a median of 0)."""

    def transform(devices: DataFrame) -> DataFrame:
        in_cohort = Window.partitionBy("customer_class", "has_generation")
        ratio = F.col("window_baseline_ratio")
        count = _over_peers(F.count(ratio), in_cohort)
        median = F.median(ratio).over(in_cohort)
        return devices.withColumn(
            "cohort_drift", _peer_drift(count, median, peers, F.col("class_drift"))
        )

    return transform


def _over_peers(aggregate: SparkColumn, peers: WindowSpec) -> SparkColumn:
    """``aggregate`` over a device's ``peers`` (a window of its class), null for a device
    without a class."""
    return F.when(F.col("customer_class").isNotNull(), aggregate.over(peers))


def _peer_drift(
    count: SparkColumn, median: SparkColumn, peers: dict[str, Any], otherwise: SparkColumn
) -> SparkColumn:
    """``median``, a group's drift, where the group has ``min_class_devices`` ratios
    (``count``) and a median above 0; else ``otherwise``."""
    large = (count >= peers["min_class_devices"]) & (median > 0)
    return F.when(large, median).otherwise(otherwise)


def _fires(devices: DataFrame, condition: SparkColumn, metric: SparkColumn) -> DataFrame:
    return devices.where(condition).select("device_id", metric.cast("double").alias("metric"))


def uninstalled_consumption(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """Import on intervals outside any install period of the device: a ghost meter, or a
    meter still drawing after removal (bypass or reuse). Metric: kWh."""
    kwh = F.col("uninstalled_import_kwh")
    return _fires(inputs.devices, kwh > params["min_kwh"], kwh)


def register_rollback(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """An import register that runs backwards (not a rollover at its maximum): a wound-back
    or reprogrammed meter. Metric: total kWh fallen in W."""
    fallen = F.col("rollback_kwh")
    return _fires(inputs.devices, fallen > params["min_kwh"], fallen)


def reverse_flow(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """Export at a service point without generation: a meter wired in reverse, so that
    consumption registers as export. Solar sites are excluded by their flag. Metric: kWh."""
    kwh = F.col("export_without_generation_kwh")
    return _fires(inputs.devices, kwh > params["min_kwh"], kwh)


def tamper_events(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """Increments of the meter's own tamper counter (cover opened, magnet). Metric: events."""
    events = F.col("tamper_events")
    return _fires(inputs.devices, events >= params["min_events"], events)


def _longest_run(days: SparkColumn) -> SparkColumn:
    """The longest run of consecutive integers in the array ``days`` (0 when empty)."""
    start = F.struct(F.lit(-2).alias("previous"), F.lit(0).alias("run"), F.lit(0).alias("best"))

    def step(acc: SparkColumn, day: SparkColumn) -> SparkColumn:
        run = F.when(day == acc["previous"] + 1, acc["run"] + 1).otherwise(F.lit(1))
        return F.struct(
            day.alias("previous"), run.alias("run"), F.greatest(acc["best"], run).alias("best")
        )

    return F.aggregate(F.array_sort(days), start, step, lambda acc: acc["best"])


def zero_consumption(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """Consecutive days with data and (almost) no import, at a place that used to consume:
    a full bypass. Days without data break a run, so a communication gap is not zero use.
    Metric: longest run, days."""
    zero_days = F.filter(
        F.transform(F.col("window_day_kwh"), lambda kwh, day: F.when(kwh < params["max_kwh"], day)),
        lambda day: day.isNotNull(),
    )
    longest = _longest_run(zero_days)
    condition = (longest >= params["min_days"]) & (
        F.col("baseline_mean_kwh") >= params["min_baseline_kwh"]
    )
    return _fires(inputs.devices, condition, longest)


def consumption_drop(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """Mean daily import in W far below the device's own baseline, after removing the drift
    of its class (season, weather): a partial bypass or a slowed meter (h1, h3, h4).
    Only comparable devices with a real baseline. Metric: window_baseline_ratio / class_drift."""
    ratio = F.col("window_baseline_ratio") / F.col("class_drift")
    return _fires(
        inputs.devices,
        F.col("window_baseline_ratio").isNotNull() & (ratio <= params["max_ratio"]),
        ratio,
    )


def sustained_drop(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """Even W's best week far below the baseline, after removing the drift of its cohort
    (``cohort_drift``: its class, with or without generation): a share of the load gone for
    all of W (a bypassed circuit, a slowed meter: h1, h3 with a cut of 20-40 %). A week away
    or a few odd days lower one week of W, not every week, so they do not fire it. Only
    devices with a ``window_baseline_ratio`` (comparable, real baseline). Metric: highest
    weekly mean of W / baseline mean / cohort drift."""
    highest_week = F.array_max(F.col("window_week_kwh"))
    ratio = highest_week / F.col("baseline_mean_kwh") / F.col("cohort_drift")
    return _fires(
        inputs.devices,
        F.col("window_baseline_ratio").isNotNull() & (ratio <= params["max_ratio"]),
        ratio,
    )


def zero_runs(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """On several days of W, hours-long runs of zero import that B never had: a switched
    bypass for part of the day (h2). Not at sites with generation, whose net import is zero
    while the sun shines. Metric: days."""
    minutes = params["min_run_hours"] * 60

    def long_runs(runs: str) -> SparkColumn:
        return F.size(F.filter(F.col(runs), lambda run: run >= minutes))

    window_days = long_runs("window_zero_runs")
    condition = (
        F.col("comparable")
        & ~F.col("has_generation")
        & (window_days >= params["min_days"])
        & (long_runs("baseline_zero_runs") == 0)
    )
    return _fires(inputs.devices, condition, window_days)


def flat_profile(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """The day's shape flattened against the baseline (mean intra-day coefficient of
    variation collapsed): a meter replaying an average (h5) or a constant. Metric: W/B."""
    ratio = F.col("window_cv") / F.col("baseline_cv")
    condition = (
        F.col("comparable")
        & (F.col("baseline_cv") >= params["min_baseline_cv"])
        & (ratio <= params["max_cv_ratio"])
    )
    return _fires(inputs.devices, condition, ratio)


def profile_shift(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """The hour-of-day profile of W no longer resembles B's (Pearson correlation of the 24
    hourly means): readings shuffled or reversed in time (h6, h4). Metric: correlation."""
    hours = inputs.devices.where(F.col("comparable")).select(
        "device_id",
        F.explode(F.arrays_zip("window_hourly_kwh", "baseline_hourly_kwh")).alias("hour"),
    )
    correlations = hours.groupBy("device_id").agg(
        correlation("hour.window_hourly_kwh", "hour.baseline_hourly_kwh").alias("correlation")
    )
    condition = F.col("correlation") < params["max_correlation"]
    return _fires(correlations.where(~F.isnan("correlation")), condition, F.col("correlation"))


def peer_deviation(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """A drop far outside what the device's peers (same customer class) did over the same
    days: robust z-score 0.6745 (window_baseline_ratio - class_median_ratio) /
    class_mad_ratio. Only classes with enough devices. Metric: z."""
    z = (
        F.lit(0.6745)
        * (F.col("window_baseline_ratio") - F.col("class_median_ratio"))
        / F.col("class_mad_ratio")
    )
    condition = F.col("peer_class") & (F.col("class_mad_ratio") > 0) & (z <= params["max_z"])
    return _fires(inputs.devices.where(F.col("window_baseline_ratio").isNotNull()), condition, z)


def data_gap(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """Installed through all of W, yet most expected import intervals are missing: a meter
    cut off from communication to hide its readings. Metric: share present."""
    window = inputs.window
    through_w = (
        inputs.installs.where(
            (F.col("installed_at") <= F.lit(window.window_start))
            & (F.col("removed_at").isNull() | (F.col("removed_at") >= F.lit(window.window_end)))
        )
        .select("device_id")
        .distinct()
    )
    expected = (
        inputs.components.where(F.col("component_type") == IMPORT_KWH)
        .groupBy("device_id")
        .agg(F.sum(MINUTES_PER_DAY / F.col("interval_minutes")).alias("expected_per_day"))
    )
    present = inputs.devices.select("device_id", "window_present_intervals")
    share = F.coalesce(F.col("window_present_intervals"), F.lit(0)) / (
        F.col("expected_per_day") * window.window_days
    )
    devices = through_w.join(expected, "device_id").join(present, "device_id", "left")
    return _fires(devices, share < params["max_present_share"], share)


def _day_base_load(hours: int) -> SparkColumn:
    """A day's base load: the mean of its ``hours`` lowest hourly mean amounts (null unless
    at least ``hours`` hours of the day have intervals: a meter read less often than hourly
    has no shape). The hours without intervals sort last, as infinity."""
    kwh, intervals, infinity = F.col("hour_kwh"), F.col("hour_intervals"), F.lit(math.inf)
    means = F.array(
        *[F.when(intervals[h] > 0, kwh[h] / intervals[h]).otherwise(infinity) for h in HOURS]
    )
    lowest = F.sort_array(means)
    total = reduce(operator.add, [lowest[k] for k in range(hours)])
    return F.when(total < F.lit(math.inf), total / hours)


def base_load_held(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """The base load (standby, the fridge: each day's lowest hours) held in W while the use
    dropped: people away, fewer people, a changed routine use less, but the base load stays.
    A meter slowed or bypassed (h1, h3) scales every hour, the base load with it. Each day's
    base load is its own ``lowest_hours`` (so days away and days at home, or a clock change
    in B, do not blur it), averaged over the period's days with data. Base load W / B
    (``base_load_ratio``) over its class's (a season moves every base load); not at sites
    with generation (their net import is zero in sunny hours). Metric: that ratio."""
    held = F.col("base_load_ratio") / F.col("class_base_drift")
    return _fires(inputs.devices, held >= params["min_ratio"], held)


def drop_ended(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """The drop is over: the last ``recent_days`` of W (all of a shorter W) have data, and
    their mean import is back at the meter's own level (B's mean on the same weekdays, times
    the class drift). A household back from a trip, a shop open again after a holiday. A
    theft still under way when the run looks keeps the latest days low. Metric: the latest
    days' mean over that level."""
    usual = F.col("baseline_recent_weekdays_kwh") * F.col("class_drift")
    days = recent_window_days(inputs.window, params)
    seen = (F.col("recent_days_with_data") == days) & (usual > 0)
    devices = inputs.devices.select(
        "device_id", F.when(seen, F.col("recent_mean_kwh") / usual).alias("level")
    )
    return _fires(devices, F.col("level") >= params["min_ratio"], F.col("level"))


def drop_before_window(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """The use dropped in B, before W: the median daily import of B's latest
    ``latest_baseline_days`` days (with data on ``comparable_share`` of them) is at most
    ``max_latest_ratio`` of B's earlier days', and W's median is at least ``min_ratio`` of
    it, over its class's (``class_latest_drift``: the season moves both). Someone moved out,
    the routine changed weeks ago: the drop against B's mean only measures B's older days.
    A theft begun with W drops from the level of B's latest days. Medians, so that a few
    days away at the end of B do not pass for a lower level, and a few days of W without
    use for W's level. Metric: W's level over B's latest, over the class's."""
    level = F.col("latest_level_ratio") / F.col("class_latest_drift")
    dropped = F.try_divide(
        F.col("latest_baseline_median_kwh"), F.col("earlier_baseline_median_kwh")
    )
    return _fires(
        inputs.devices,
        (level >= params["min_ratio"]) & (dropped <= params["max_latest_ratio"]),
        level,
    )


def spread_held(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """The day's swings are still there: the mean standard deviation of W's interval amounts
    is at least ``min_ratio`` of B's. The day looks flatter (its coefficient of variation
    fell) because a steady load came on top (electric heating in winter, an appliance
    running around the clock), not because the readings were replaced by an average or a
    constant (h5), which takes the swings away. Metric: spread W / B."""
    spread = F.col("baseline_spread_kwh")
    devices = inputs.devices.select(
        "device_id", F.when(spread > 0, F.col("window_spread_kwh") / spread).alias("ratio")
    )
    return _fires(devices, F.col("ratio") >= params["min_ratio"], F.col("ratio"))


def flat_baseline_profile(inputs: RuleInputs, params: dict[str, Any]) -> DataFrame:
    """B's hour-of-day profile has no shape: its 24 hourly means vary (standard deviation
    over mean) by less than ``max_profile_cv`` (a plant running around the clock, a constant
    base). A correlation with a flat profile measures noise, not readings moved in the day.
    Metric: that variation."""
    hourly = F.filter(F.col("baseline_hourly_kwh"), lambda amount: amount.isNotNull())
    count = F.size(hourly)
    total = F.aggregate(hourly, F.lit(0.0), lambda acc, amount: acc + amount)
    squares = F.aggregate(hourly, F.lit(0.0), lambda acc, amount: acc + amount * amount)
    mean = F.when(count > 0, total / count)
    spread = F.sqrt(F.greatest(squares / count - mean * mean, F.lit(0.0)))
    devices = inputs.devices.select("device_id", F.when(mean > 0, spread / mean).alias("variation"))
    return _fires(devices, F.col("variation") < params["max_profile_cv"], F.col("variation"))


RULES: dict[str, Rule] = {
    "UNINSTALLED_CONSUMPTION": uninstalled_consumption,
    "REGISTER_ROLLBACK": register_rollback,
    "REVERSE_FLOW": reverse_flow,
    "TAMPER_EVENTS": tamper_events,
    "ZERO_CONSUMPTION": zero_consumption,
    "CONSUMPTION_DROP": consumption_drop,
    "ZERO_RUNS": zero_runs,
    "FLAT_PROFILE": flat_profile,
    "PROFILE_SHIFT": profile_shift,
    "PEER_DEVIATION": peer_deviation,
    "SUSTAINED_DROP": sustained_drop,
    "DATA_GAP": data_gap,
}


CONFOUNDERS: dict[str, Rule] = {
    "BASE_LOAD_HELD": base_load_held,
    "DROP_ENDED": drop_ended,
    "DROP_BEFORE_WINDOW": drop_before_window,
    "FLAT_BASELINE_PROFILE": flat_baseline_profile,
    "SPREAD_HELD": spread_held,
}


def rule_params(config: dict[str, Any], rule: str) -> dict[str, Any]:
    """A rule's own parameters, plus the shared ones some rules need."""
    return {**config["rules"][rule], "min_baseline_kwh": config["peers"]["min_baseline_kwh"]}


def detect(inputs: RuleInputs, config: dict[str, Any]) -> DataFrame:
    """Every rule's findings: device, service point, rule, weight, metric, the confounder
    that explains it (if any) and the window."""
    found = union_all(_found(inputs, name, rule_params(config, name)) for name in RULES)
    places = inputs.devices.select("device_id", "service_point_id")
    return (
        found.transform(_explained(inputs, config))
        .join(places, "device_id", "left")
        .select(*FINDING_COLUMNS, *_window_columns(inputs.window))
    )


def _explained(inputs: RuleInputs, config: dict[str, Any]) -> Callable[[DataFrame], DataFrame]:
    """Findings -> with ``explained_by``: the first confounder by name that holds for the
    finding's device and ``explains`` its rule (null when none does)."""
    names = sorted(CONFOUNDERS)
    unknown = sorted(
        {rule for name in names for rule in config["confounders"][name]["explains"]} - set(RULES)
    )
    if unknown:
        raise ConfigError(f"confounders: explains unknown rules {', '.join(unknown)}")

    def transform(findings: DataFrame) -> DataFrame:
        held = (
            union_all(
                CONFOUNDERS[name](inputs, config["confounders"][name]).select(
                    "device_id", F.lit(name).alias("confounder")
                )
                for name in names
            )
            .groupBy("device_id")
            .agg(F.collect_set("confounder").alias("_held"))
        )
        explained_by = F.coalesce(
            *[
                F.when(
                    F.array_contains("_held", name)
                    & F.col("rule").isin(config["confounders"][name]["explains"]),
                    F.lit(name),
                )
                for name in names
            ],
            F.lit(None).cast("string"),
        )
        return (
            findings.join(held, "device_id", "left")
            .withColumn("explained_by", explained_by)
            .drop("_held")
        )

    return transform


def _found(inputs: RuleInputs, name: str, params: dict[str, Any]) -> DataFrame:
    """The devices rule ``name`` fires for, with its weight and metric."""
    return RULES[name](inputs, params).select(
        "device_id",
        F.lit(name).alias("rule"),
        F.lit(float(params["weight"])).alias("weight"),
        "metric",
    )


def score(findings: DataFrame, inputs: RuleInputs, config: dict[str, Any]) -> DataFrame:
    """One alert per device whose score 1 - prod(1 - weight), over its findings that no
    confounder explains, reaches ``alert_threshold``."""
    kept = F.aggregate(F.collect_list(1 - F.col("weight")), F.lit(1.0), lambda acc, x: acc * x)
    scored = (
        findings.where(F.col("explained_by").isNull())
        .groupBy("device_id")
        .agg((1 - kept).alias("score"), F.array_sort(F.collect_list("rule")).alias("rules"))
    )
    places = inputs.devices.select("device_id", "service_point_id", "customer_class")
    return (
        scored.where(F.col("score") >= config["alert_threshold"])
        .join(places, "device_id", "left")
        .select(*ALERT_COLUMNS, *_window_columns(inputs.window))
    )


def _window_columns(window: RunWindow) -> list[SparkColumn]:
    """The window a finding or an alert is about: ``window_start``, ``window_end``."""
    return [
        F.lit(window.window_start_date).alias("window_start"),
        F.lit(window.run_date).alias("window_end"),
    ]
