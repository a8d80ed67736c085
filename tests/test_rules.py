"""Each theft rule on tiny hand-made daily usage: where it fires, just below its threshold,
and the confounder it must not fire on. Then the score and the alerts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dependencies.config import ConfigError, bundled_defaults
from dependencies.run_window import RunWindow
from dependencies.tables import ddl
from jobs import rules, usage
from jobs.debug import checkpoint

CONFIG = bundled_defaults()
WINDOW = RunWindow(date(2026, 11, 15), 14, 28, 1)
W_DAYS = [WINDOW.window_start_date + timedelta(days=i) for i in range(14)]
B_DAYS = [WINDOW.baseline_start_date + timedelta(days=i) for i in range(28)]
# kWh per hour of day: base load, a morning and an evening peak (10 kWh a day).
PROFILE = [0.2 + (0.6 if 7 <= h < 9 else 0.0) + (1.0 if 18 <= h < 22 else 0.0) for h in range(24)]
DAILY_SCHEMA = (
    "device_id string, day date, import_kwh double, uninstalled_import_kwh double, "
    "export_kwh double, export_without_generation_kwh double, tamper_events double, "
    "rollback_kwh double, present_intervals bigint, expected_intervals double, "
    "shape_intervals bigint, shape_kwh double, shape_kwh_squared double, "
    "longest_zero_run_minutes double, hour_kwh array<double>, hour_intervals array<bigint>, "
    "latest_installed_start timestamp"
)
COMPONENT_SCHEMA = ddl("measuring_component")
INSTALL_SCHEMA = ddl("install_event")

Hourly = Callable[[date], list[float | None] | None]


def scaled(factor: float, profile: list[float] = PROFILE) -> list[float]:
    return [v * factor for v in profile]


def day_row(
    device: str,
    day: date,
    hours: list[float | None],
    klass: str = "RESIDENTIAL",
    generation: bool = False,
    **values: float,
) -> dict[str, Any]:
    """A daily usage row as ``jobs.usage.daily_usage`` makes it, from 24 hourly amounts
    (None: the interval is missing)."""
    present = [v for v in hours if v is not None]
    longest = run = 0
    for value in hours:
        run = run + 60 if value is not None and value < 0.001 else 0
        longest = max(longest, run)
    return {
        "device_id": device,
        "day": day,
        "import_kwh": float(sum(present)),
        "uninstalled_import_kwh": values.get("uninstalled_import_kwh"),
        "export_kwh": values.get("export_kwh"),
        "export_without_generation_kwh": values.get("export_without_generation_kwh"),
        "tamper_events": values.get("tamper_events"),
        "rollback_kwh": values.get("rollback_kwh", 0.0),
        "present_intervals": len(present),
        "expected_intervals": 24.0,
        "shape_intervals": len(present),
        "shape_kwh": float(sum(present)),
        "shape_kwh_squared": float(sum(v * v for v in present)),
        "longest_zero_run_minutes": float(longest) if longest else None,
        "hour_kwh": list(hours),
        "hour_intervals": [0 if v is None else 1 for v in hours],
        # Not daily usage: the device's install period (see :func:`rule_inputs`).
        "customer_class": klass,
        "has_generation": generation,
        "latest_installed_start": datetime.combine(day, datetime.min.time(), UTC)
        + timedelta(hours=23),
    }


def meter(
    device: str,
    window: Hourly | list[float | None] = PROFILE,
    baseline: Hourly | list[float | None] = PROFILE,
    klass: str = "RESIDENTIAL",
    generation: bool = False,
    window_values: dict[str, float] | None = None,
    baseline_values: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """42 daily rows of one device; a day whose hours are None has no row at all."""
    rows = []
    for days, hours, extra in (
        (B_DAYS, baseline, baseline_values),
        (W_DAYS, window, window_values),
    ):
        for day in days:
            values = hours(day) if callable(hours) else hours
            if values is not None:
                rows.append(day_row(device, day, values, klass, generation, **(extra or {})))
    return rows


def rule_inputs(
    spark: SparkSession,
    rows: list[dict[str, Any]],
    installs: list[tuple] | None = None,
    components: list[tuple] | None = None,
    read_once: bool = False,
) -> rules.RuleInputs:
    """What the rules read of daily rows; without ``installs``, each device has one install period
    (service point ``SP-<device>``, since before B) with its rows' class and generation.
    ``read_once``: for a single rule (or confounder), which reads the per-device summaries
    once: they are left to its query, which computes only the summaries it reads."""
    daily = spark.createDataFrame(rows, DAILY_SCHEMA)
    if installs is None:
        installs = sorted(
            {
                (
                    f"E-{r['device_id']}",
                    r["device_id"],
                    f"SP-{r['device_id']}",
                    INSTALLED,
                    None,
                    r["customer_class"],
                    r["has_generation"],
                )
                for r in rows
            }
        )
    inputs = rules.RuleInputs.build(
        daily,
        spark.createDataFrame(components or [], COMPONENT_SCHEMA),
        spark.createDataFrame(installs, INSTALL_SCHEMA),
        WINDOW,
        CONFIG,
    )
    if read_once:
        return inputs
    # As the job does: the per-device summaries every rule reads are computed once.
    return replace(inputs, devices=checkpoint(inputs.devices, "devices"))


def fired(
    spark: SparkSession, rule: str, rows: list[dict[str, Any]], **tables: list[tuple]
) -> dict[str, float]:
    """{device: metric} where ``rule`` fires."""
    inputs = rule_inputs(spark, rows, **tables, read_once=True)
    frame = rules.RULES[rule](inputs, rules.rule_params(CONFIG, rule))
    return {row["device_id"]: row["metric"] for row in frame.collect()}


def peers(
    count: int, klass: str = "RESIDENTIAL", factor: Callable[[int], float] = lambda i: 1.0
) -> list[dict]:
    """``count`` honest devices of a class whose W is ``factor(i)`` x their baseline."""
    rows: list[dict[str, Any]] = []
    for i in range(count):
        rows += meter(f"P{i:02d}", scaled(factor(i)), klass=klass)
    return rows


# --- UNINSTALLED_CONSUMPTION ---------------------------------------------------------------


def test_uninstalled_consumption_fires_on_import_outside_install_periods(
    spark: SparkSession,
) -> None:
    # GIVEN 0.05 kWh a day of uninstalled import through W (0.7 kWh)
    rows = meter("G", window_values={"uninstalled_import_kwh": 0.05})
    # WHEN / THEN the rule fires with the kWh
    assert fired(spark, "UNINSTALLED_CONSUMPTION", rows) == pytest.approx({"G": 0.7})


def test_uninstalled_consumption_needs_more_than_its_threshold(spark: SparkSession) -> None:
    # GIVEN 0.1 kWh uninstalled in W in all: not more than 0.1
    rows = [
        dict(r, uninstalled_import_kwh=0.1 if r["day"] == W_DAYS[0] else None) for r in meter("G")
    ]
    assert fired(spark, "UNINSTALLED_CONSUMPTION", rows) == {}


def test_uninstalled_consumption_ignores_the_baseline(spark: SparkSession) -> None:
    # GIVEN consumption before the install, in B only
    rows = meter("G", baseline_values={"uninstalled_import_kwh": 5.0})
    assert fired(spark, "UNINSTALLED_CONSUMPTION", rows) == {}


# --- REGISTER_ROLLBACK ---------------------------------------------------------------------


def test_register_rollback_fires_on_a_register_wound_back_in_w(spark: SparkSession) -> None:
    rows = [dict(r, rollback_kwh=5.0 if r["day"] == W_DAYS[3] else 0.0) for r in meter("K")]
    assert fired(spark, "REGISTER_ROLLBACK", rows) == {"K": 5.0}


def test_register_rollback_needs_more_than_its_threshold(spark: SparkSession) -> None:
    rows = [dict(r, rollback_kwh=0.01 if r["day"] == W_DAYS[3] else 0.0) for r in meter("K")]
    assert fired(spark, "REGISTER_ROLLBACK", rows) == {}


def run_readings(
    spark: SparkSession,
    reads: list[tuple[str, str, float]],
    comps: list[tuple],
    installs: list[tuple],
    rule: str,
) -> dict[str, float]:
    """Readings through the whole usage pipeline, then one rule (W: 1 day, B: 1 day)."""
    window = RunWindow(date(2026, 11, 2), 1, 1, 1)
    components = spark.createDataFrame(comps, COMPONENT_SCHEMA)
    periods = spark.createDataFrame(installs, INSTALL_SCHEMA)
    daily = (
        spark.createDataFrame(
            reads, "measuring_component_id string, measured_at string, value double"
        )
        .select(
            "measuring_component_id",
            F.col("measured_at").cast("timestamp").alias("measured_at"),
            "value",
            F.lit("used").alias("status"),
            F.lit(None).cast("string").alias("record"),
        )
        .transform(usage.to_intervals(components, CONFIG["usage"], window.baseline_start))
        .transform(usage.mark_zero_runs(CONFIG["usage"]))
        .transform(usage.attach_installs(periods))
        .transform(usage.split_by_day)
        .transform(usage.by_day)
        .transform(usage.daily_usage(window))
    )
    found = rules.RULES[rule](
        rules.RuleInputs.build(daily, components, periods, window, CONFIG),
        rules.rule_params(CONFIG, rule),
    )
    return {row["device_id"]: row["metric"] for row in found.collect()}


INSTALLED = datetime(2026, 1, 1, tzinfo=UTC)


def test_register_rollover_is_not_a_rollback(spark: SparkSession) -> None:
    # GIVEN a 1000 kWh register that wraps from 999 to 2 in W, and one wound back from 500 to 400
    comps = [
        ("A", "ROLL", "IMPORT_KWH", "CUMULATIVE", 60, 1000.0),
        ("B", "BACK", "IMPORT_KWH", "CUMULATIVE", 60, 1000.0),
    ]
    reads = [
        ("A", "2026-11-02T00:00:00Z", 999.0),
        ("A", "2026-11-02T01:00:00Z", 2.0),
        ("B", "2026-11-02T00:00:00Z", 500.0),
        ("B", "2026-11-02T01:00:00Z", 400.0),
    ]
    installs = [
        (f"E{d}", d, f"SP-{d}", INSTALLED, None, "RESIDENTIAL", False) for d in ("ROLL", "BACK")
    ]
    # WHEN the readings go through usage and the rule
    # THEN only the wound-back register is found, with its 100 kWh
    assert run_readings(spark, reads, comps, installs, "REGISTER_ROLLBACK") == {"BACK": 100.0}


# --- REVERSE_FLOW ---------------------------------------------------------------------------


def test_reverse_flow_fires_on_export_without_generation(spark: SparkSession) -> None:
    rows = meter("F", window_values={"export_without_generation_kwh": 0.1})
    assert fired(spark, "REVERSE_FLOW", rows) == pytest.approx({"F": 1.4})


def test_reverse_flow_needs_more_than_its_threshold(spark: SparkSession) -> None:
    rows = meter("F", window_values={"export_without_generation_kwh": 1.0 / 14})
    assert fired(spark, "REVERSE_FLOW", rows) == {}


def test_reverse_flow_ignores_export_at_a_solar_site(spark: SparkSession) -> None:
    # GIVEN the same 3 kWh of export in W at a site with generation and at one without
    comps = [
        ("SE", "SOLAR", "EXPORT_KWH", "CUMULATIVE", 60, None),
        ("RE", "REVERSED", "EXPORT_KWH", "CUMULATIVE", 60, None),
    ]
    reads = [
        (c, f"2026-11-02T{h:02d}:00:00Z", float(h)) for c in ("SE", "RE") for h in (10, 11, 12, 13)
    ]
    installs = [
        ("E1", "SOLAR", "SP1", INSTALLED, None, "RESIDENTIAL", True),
        ("E2", "REVERSED", "SP2", INSTALLED, None, "RESIDENTIAL", False),
    ]
    # WHEN / THEN only the site without generation is found
    assert run_readings(spark, reads, comps, installs, "REVERSE_FLOW") == {"REVERSED": 3.0}


# --- TAMPER_EVENTS --------------------------------------------------------------------------


def test_tamper_events_fires_on_one_event_in_w(spark: SparkSession) -> None:
    rows = [dict(r, tamper_events=1.0 if r["day"] == W_DAYS[5] else 0.0) for r in meter("T")]
    assert fired(spark, "TAMPER_EVENTS", rows) == {"T": 1.0}


def test_tamper_events_does_not_fire_without_events_in_w(spark: SparkSession) -> None:
    # GIVEN a counter that stepped in B (an old, already handled event) and not in W
    rows = [dict(r, tamper_events=3.0 if r["day"] == B_DAYS[5] else 0.0) for r in meter("T")]
    assert fired(spark, "TAMPER_EVENTS", rows) == {}


# --- ZERO_CONSUMPTION -----------------------------------------------------------------------


def zero_days(count: int, first: int = 3) -> Hourly:
    return lambda day: [0.0] * 24 if day in W_DAYS[first : first + count] else PROFILE


def test_zero_consumption_fires_on_five_days_without_import(spark: SparkSession) -> None:
    assert fired(spark, "ZERO_CONSUMPTION", meter("Z", zero_days(5))) == {"Z": 5.0}


def test_zero_consumption_needs_five_consecutive_days(spark: SparkSession) -> None:
    # GIVEN 4 zero days, one normal day, 4 zero days
    def window(day: date) -> list[float]:
        return [0.0] * 24 if day in W_DAYS[1:5] + W_DAYS[6:10] else PROFILE

    assert fired(spark, "ZERO_CONSUMPTION", meter("Z", window)) == {}


def test_zero_consumption_is_not_a_communication_gap(spark: SparkSession) -> None:
    # GIVEN 7 days in W with no readings at all (no data), the rest normal
    def window(day: date) -> list[float] | None:
        return None if day in W_DAYS[3:10] else PROFILE

    assert fired(spark, "ZERO_CONSUMPTION", meter("Z", window)) == {}


def test_zero_consumption_needs_a_consuming_baseline(spark: SparkSession) -> None:
    # GIVEN a vacant house: 0.5 kWh a day in B, nothing in W
    assert fired(spark, "ZERO_CONSUMPTION", meter("Z", [0.0] * 24, scaled(0.05))) == {}


# --- CONSUMPTION_DROP -----------------------------------------------------------------------


def test_consumption_drop_fires_below_its_threshold(spark: SparkSession) -> None:
    # GIVEN a device using 64 % of its baseline in W, in a class too small for drift
    assert fired(spark, "CONSUMPTION_DROP", meter("D", scaled(0.64))) == pytest.approx({"D": 0.64})


def test_consumption_drop_not_just_above_its_threshold(spark: SparkSession) -> None:
    assert fired(spark, "CONSUMPTION_DROP", meter("D", scaled(0.66))) == {}


def test_consumption_drop_needs_a_baseline(spark: SparkSession) -> None:
    # GIVEN a new install: no baseline days, little use in W
    assert (
        fired(spark, "CONSUMPTION_DROP", meter("NEW", scaled(0.2), baseline=lambda d: None)) == {}
    )


def test_consumption_drop_is_relative_to_the_class_drift(spark: SparkSession) -> None:
    # GIVEN 20 peers whose use fell to 60 % (a warm spell), a device at 60 % and one at 30 %
    rows = peers(20, factor=lambda i: 0.6) + meter("SAME", scaled(0.6)) + meter("HALF", scaled(0.3))
    # WHEN / THEN only the device far below its class is found, at r / m = 0.5
    assert fired(spark, "CONSUMPTION_DROP", rows) == pytest.approx({"HALF": 0.5})


# --- ZERO_RUNS -----------------------------------------------------------------------------


def night_off(days: int, hours: range = range(1, 5)) -> Hourly:
    """Zero import at ``hours`` on the first ``days`` days of W."""
    return lambda day: (
        [0.0 if h in hours else v for h, v in enumerate(PROFILE)]
        if day in W_DAYS[:days]
        else PROFILE
    )


def test_zero_runs_fires_on_three_days_with_four_hours_off(spark: SparkSession) -> None:
    assert fired(spark, "ZERO_RUNS", meter("H2", night_off(3))) == {"H2": 3.0}


def test_zero_runs_needs_three_days(spark: SparkSession) -> None:
    assert fired(spark, "ZERO_RUNS", meter("H2", night_off(2))) == {}


def test_zero_runs_needs_four_hours(spark: SparkSession) -> None:
    assert fired(spark, "ZERO_RUNS", meter("H2", night_off(14, range(1, 4)))) == {}


def test_zero_runs_ignores_a_solar_site(spark: SparkSession) -> None:
    # GIVEN net import that is zero for hours at midday in W, at a site with generation
    assert (
        fired(spark, "ZERO_RUNS", meter("PV", night_off(14, range(10, 16)), generation=True)) == {}
    )


def test_zero_runs_ignores_a_pattern_the_baseline_already_had(spark: SparkSession) -> None:
    pattern = night_off(14)(W_DAYS[0])
    assert fired(spark, "ZERO_RUNS", meter("H2", pattern, pattern)) == {}


# --- FLAT_PROFILE --------------------------------------------------------------------------


def flattened(keep: float) -> list[float]:
    """PROFILE with its deviations from the mean scaled by ``keep`` (same daily total)."""
    mean = sum(PROFILE) / 24
    return [mean + keep * (v - mean) for v in PROFILE]


def test_flat_profile_fires_on_a_day_replaced_by_its_mean(spark: SparkSession) -> None:
    assert fired(spark, "FLAT_PROFILE", meter("H5", flattened(0.0))) == pytest.approx(
        {"H5": 0.0}, abs=1e-9
    )


def test_flat_profile_fires_below_its_threshold_not_above(spark: SparkSession) -> None:
    rows = meter("BELOW", flattened(0.34)) + meter("ABOVE", flattened(0.36))
    assert fired(spark, "FLAT_PROFILE", rows) == pytest.approx({"BELOW": 0.34})


def test_flat_profile_ignores_a_load_that_was_always_flat(spark: SparkSession) -> None:
    # GIVEN a baseline whose intra-day variation is already below 0.2 (a constant base load)
    nearly_flat = [1.0 + (0.1 if h % 2 else -0.1) for h in range(24)]
    assert fired(spark, "FLAT_PROFILE", meter("BASE", [1.0] * 24, nearly_flat)) == {}


# --- PROFILE_SHIFT -------------------------------------------------------------------------


def test_profile_shift_fires_on_a_reversed_day(spark: SparkSession) -> None:
    found = fired(spark, "PROFILE_SHIFT", meter("H6", PROFILE[::-1]))
    assert list(found) == ["H6"]
    assert found["H6"] < 0.4


def blended(share: float) -> list[float]:
    """PROFILE's day, ``share`` of it as it was and the rest reversed."""
    reversed_day = PROFILE[::-1]
    return [
        share * kept + (1 - share) * moved
        for kept, moved in zip(PROFILE, reversed_day, strict=True)
    ]


def test_profile_shift_fires_below_its_threshold_not_above(spark: SparkSession) -> None:
    # GIVEN W days half reversed: correlating 0.445 and 0.540 with B (threshold 0.5; a
    # reversed day in spring, B's hours blurred by the clock change, correlates up to 0.49)
    rows = meter("BELOW", blended(0.44)) + meter("ABOVE", blended(0.48))
    # WHEN PROFILE_SHIFT runs THEN only the day under the threshold fires, with its correlation
    assert fired(spark, "PROFILE_SHIFT", rows) == pytest.approx({"BELOW": 0.445}, abs=1e-3)


def test_profile_shift_not_on_a_profile_moved_by_an_hour(spark: SparkSession) -> None:
    # GIVEN the same day one hour later (daylight-saving, a later routine): still correlated
    assert fired(spark, "PROFILE_SHIFT", meter("LATE", PROFILE[-1:] + PROFILE[:-1])) == {}


def test_profile_shift_has_no_correlation_to_find_in_a_constant_day(spark: SparkSession) -> None:
    # GIVEN a window whose 24 hourly means are all alike (a replayed constant: FLAT_PROFILE's
    # case), against a shaped baseline, and a shaped window against a constant baseline
    constant = [0.5] * 24
    rows = meter("CONST_W", constant) + meter("CONST_B", PROFILE, constant)
    # WHEN PROFILE_SHIFT runs THEN there is no correlation to judge: no finding, no error
    assert fired(spark, "PROFILE_SHIFT", rows) == {}


def test_profile_shift_not_on_a_scaled_profile(spark: SparkSession) -> None:
    # GIVEN half the use with the same shape (a drop, not a shift)
    assert fired(spark, "PROFILE_SHIFT", meter("HALF", scaled(0.5))) == {}


# --- PEER_DEVIATION ------------------------------------------------------------------------


def spread(i: int) -> float:
    """Peers' W/B ratios 0.90 .. 1.09: median 0.995, MAD 0.05."""
    return 0.90 + 0.01 * i


def test_peer_deviation_fires_on_an_outlier_of_its_class(spark: SparkSession) -> None:
    # GIVEN 20 peers and a device at r = 0.7: z = 0.6745 (0.7 - 0.99) / 0.05 = -3.9
    rows = peers(20, factor=spread) + meter("OUT", scaled(0.7))
    found = fired(spark, "PEER_DEVIATION", rows)
    assert found == pytest.approx({"OUT": 0.6745 * (0.7 - 0.99) / 0.05})


def test_peer_deviation_not_just_inside_the_threshold(spark: SparkSession) -> None:
    # GIVEN a device at r = 0.74: z = 0.6745 (0.74 - 0.99) / 0.05 = -3.37
    assert (
        fired(spark, "PEER_DEVIATION", peers(20, factor=spread) + meter("OUT", scaled(0.74))) == {}
    )


def test_peer_deviation_skips_a_class_too_small(spark: SparkSession) -> None:
    # GIVEN the same outlier among 18 commercial peers (19 devices in the class)
    rows = peers(18, "COMMERCIAL", spread) + meter("OUT", scaled(0.5), klass="COMMERCIAL")
    assert fired(spark, "PEER_DEVIATION", rows) == {}


# --- SUSTAINED_DROP ------------------------------------------------------------------------


def by_window_week(first: float, second: float) -> Hourly:
    """PROFILE scaled by ``first`` in W's first week and by ``second`` in its second."""
    return lambda day: scaled(first if day < W_DAYS[7] else second)


def test_sustained_drop_fires_when_every_week_of_w_is_low(spark: SparkSession) -> None:
    # GIVEN a meter at 70 % of its baseline in W's first week and 78 % in its second
    found = fired(spark, "SUSTAINED_DROP", meter("S", by_window_week(0.7, 0.78)))
    # THEN the best week of W is 0.78 of the baseline: at most 0.8
    assert found == pytest.approx({"S": 0.78})


def test_sustained_drop_not_just_above_its_threshold(spark: SparkSession) -> None:
    assert fired(spark, "SUSTAINED_DROP", meter("S", by_window_week(0.7, 0.81))) == {}


def test_sustained_drop_ignores_a_week_away(spark: SparkSession) -> None:
    # GIVEN a household away for W's first week (10 %), back to normal in the second: r = 0.55
    assert fired(spark, "SUSTAINED_DROP", meter("AWAY", by_window_week(0.1, 1.0))) == {}


def test_sustained_drop_is_relative_to_the_class_drift(spark: SparkSession) -> None:
    # GIVEN 20 peers at 75 % (a warm spell) and a meter at 75 %: one at 60 % of that is found
    rows = (
        peers(20, factor=lambda i: 0.75) + meter("SAME", scaled(0.75)) + meter("LOW", scaled(0.45))
    )
    assert fired(spark, "SUSTAINED_DROP", rows) == pytest.approx({"LOW": 0.6})


def test_sustained_drop_is_relative_to_the_drift_of_sites_with_generation(
    spark: SparkSession,
) -> None:
    # GIVEN a class of 21 sites without generation as in B, and 21 with generation whose net
    # import fell to 70 % (a sunnier month): among them, each kind has one meter at 70 %
    solar = [r for i in range(20) for r in meter(f"S{i:02d}", scaled(0.7), generation=True)]
    rows = peers(20) + solar + meter("SUNNY", scaled(0.7), generation=True)
    rows += meter("LOW", scaled(0.7))
    # WHEN SUSTAINED_DROP runs THEN only the meter without generation is low for its kind
    assert fired(spark, "SUSTAINED_DROP", rows) == pytest.approx({"LOW": 0.7})


# --- DATA_GAP ------------------------------------------------------------------------------

IMPORT = [("GAP-IMP", "GAP", "IMPORT_KWH", "CUMULATIVE", 60, None)]


def reporting(days: int) -> Hourly:
    return lambda day: PROFILE if day in B_DAYS + W_DAYS[:days] else None


def test_data_gap_fires_on_an_installed_meter_that_stops_reporting(spark: SparkSession) -> None:
    installs = [("E", "GAP", "SP", INSTALLED, None, "RESIDENTIAL", False)]
    found = fired(
        spark, "DATA_GAP", meter("GAP", reporting(6)), installs=installs, components=IMPORT
    )
    assert found == pytest.approx({"GAP": 6 / 14})


def test_data_gap_not_at_half_present(spark: SparkSession) -> None:
    installs = [("E", "GAP", "SP", INSTALLED, None, "RESIDENTIAL", False)]
    assert (
        fired(spark, "DATA_GAP", meter("GAP", reporting(7)), installs=installs, components=IMPORT)
        == {}
    )


def test_data_gap_fires_on_a_meter_that_never_reported(spark: SparkSession) -> None:
    installs = [("E", "GAP", "SP", INSTALLED, None, "RESIDENTIAL", False)]
    assert fired(spark, "DATA_GAP", meter("OTHER"), installs=installs, components=IMPORT) == {
        "GAP": 0.0
    }


def test_data_gap_not_for_a_meter_installed_during_w(spark: SparkSession) -> None:
    # GIVEN a meter installed on W's fourth day, reporting since
    installs = [("E", "GAP", "SP", datetime(2026, 11, 5, tzinfo=UTC), None, "RESIDENTIAL", False)]
    rows = meter("GAP", lambda d: PROFILE if d >= W_DAYS[3] else None, lambda d: None)
    assert fired(spark, "DATA_GAP", rows, installs=installs, components=IMPORT) == {}


# --- score and alerts ----------------------------------------------------------------------


def findings_frame(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    """Findings of (device, rule, weight[, the confounder that explains it])."""
    schema = "device_id string, rule string, weight double, explained_by string"
    return spark.createDataFrame([(*r, None)[:4] for r in rows], schema).select(
        "device_id",
        F.lit(None).cast("string").alias("service_point_id"),
        "rule",
        "weight",
        F.lit(1.0).alias("metric"),
        "explained_by",
    )


def test_score_combines_weights_and_alerts_at_the_threshold(spark: SparkSession) -> None:
    # GIVEN four devices' findings, one of them explained by a confounder
    found = findings_frame(
        spark,
        [
            ("A", "ZERO_RUNS", 0.5),  # exactly the threshold
            ("B", "PEER_DEVIATION", 0.4),
            ("B", "DATA_GAP", 0.3),  # 1 - 0.6 x 0.7 = 0.58
            ("C", "PEER_DEVIATION", 0.4),  # 0.4
            ("D", "CONSUMPTION_DROP", 0.6, "BASE_LOAD_HELD"),  # explained: not counted
            ("D", "PEER_DEVIATION", 0.4),  # 0.4
        ],
    )
    ev = rule_inputs(spark, meter("A") + meter("B") + meter("C") + meter("D"))
    # WHEN scored
    alerts = rules.score(found, ev, CONFIG)
    # THEN A and B alert, with rules sorted and their latest service point
    expected = spark.createDataFrame(
        [
            ("A", "SP-A", "RESIDENTIAL", 0.5, ["ZERO_RUNS"], W_DAYS[0], W_DAYS[-1]),
            (
                "B",
                "SP-B",
                "RESIDENTIAL",
                0.58,
                ["DATA_GAP", "PEER_DEVIATION"],
                W_DAYS[0],
                W_DAYS[-1],
            ),
        ],
        "device_id string, service_point_id string, customer_class string, score double, "
        "rules array<string>, window_start date, window_end date",
    )
    assert_approx_df_equality(alerts.orderBy("device_id"), expected, 1e-9, ignore_nullable=True)


def test_a_certain_rule_scores_one(spark: SparkSession) -> None:
    found = findings_frame(spark, [("G", "UNINSTALLED_CONSUMPTION", 1.0), ("G", "DATA_GAP", 0.3)])
    alerts = rules.score(found, rule_inputs(spark, meter("G")), CONFIG).collect()
    assert [(a["device_id"], a["score"]) for a in alerts] == [("G", 1.0)]


def test_detect_names_weighs_and_places_every_finding(spark: SparkSession) -> None:
    # GIVEN one device with a tamper event and one wound-back register
    rows = [dict(r, tamper_events=2.0 if r["day"] == W_DAYS[0] else 0.0) for r in meter("T")]
    rows += [dict(r, rollback_kwh=1.0 if r["day"] == W_DAYS[0] else 0.0) for r in meter("K")]
    # WHEN every rule runs
    found = rules.detect(rule_inputs(spark, rows), CONFIG)
    # THEN each finding carries its weight, metric, service point and the window
    expected = spark.createDataFrame(
        [
            ("K", "SP-K", "REGISTER_ROLLBACK", 0.9, 1.0, None, W_DAYS[0], W_DAYS[-1]),
            ("T", "SP-T", "TAMPER_EVENTS", 0.7, 2.0, None, W_DAYS[0], W_DAYS[-1]),
        ],
        "device_id string, service_point_id string, rule string, weight double, metric double, "
        "explained_by string, window_start date, window_end date",
    )
    assert_approx_df_equality(found.orderBy("device_id"), expected, 1e-9, ignore_nullable=True)


# --- Confounders: BASE_LOAD_HELD ----------------------------------------------------------

# Use dropped by seven tenths in the hours people are active (a day's import from 10 to 6.36
# kWh, its shape kept), the night-time base load kept (people away, a changed routine) ...
BEHAVIOUR_DROP = [0.2 + (v - 0.2) * 0.3 for v in PROFILE]
# ... and every hour scaled by 0.6, the base load with it (a slowed meter, h1).
SLOWED = scaled(0.6)


def holds(spark: SparkSession, confounder: str, rows: list[dict[str, Any]]) -> dict[str, float]:
    """{device: metric} where ``confounder`` holds."""
    frame = rules.CONFOUNDERS[confounder](
        rule_inputs(spark, rows, read_once=True), CONFIG["confounders"][confounder]
    )
    return {row["device_id"]: row["metric"] for row in frame.collect()}


def held(spark: SparkSession, rows: list[dict[str, Any]]) -> dict[str, float]:
    """{device: metric} where BASE_LOAD_HELD holds."""
    return holds(spark, "BASE_LOAD_HELD", rows)


def test_base_load_held_when_use_dropped_but_the_base_load_did_not(spark: SparkSession) -> None:
    # GIVEN a household whose active use dropped while its base load held, and a slowed meter
    rows = meter("AWAY", BEHAVIOUR_DROP) + meter("SLOW", SLOWED)
    # WHEN the confounder looks at them THEN it holds for the first only (base W / B = 1)
    assert held(spark, rows) == {"AWAY": pytest.approx(1.0)}


def test_base_load_held_is_measured_against_the_class(spark: SparkSession) -> None:
    # GIVEN a class of 20 whose base load rose by half (heating nights), and one of them
    # whose base load only held
    rows = peers(20, factor=lambda i: 1.5) + meter("SAME", PROFILE)
    # WHEN the confounder looks at them THEN the one that held is 1 / 1.5 of its class:
    # below the bar, while the class holds
    found = held(spark, rows)
    assert "SAME" not in found
    assert found["P00"] == pytest.approx(1.0)


def test_base_load_held_is_measured_day_by_day(spark: SparkSession) -> None:
    # GIVEN a night low of three hours (0.1 kWh) that moves two hours later on half of B's
    # days (a clock change, a later bedtime): B's average profile has no hour that low
    night = [0.1 if 2 <= h < 5 else v for h, v in enumerate(PROFILE)]
    later = night[-2:] + night[:-2]
    rows = meter("DST", night, lambda day: night if day < B_DAYS[14] else later)
    # WHEN the confounder looks at it THEN each day's own lowest hours held: 1.0
    assert held(spark, rows) == {"DST": pytest.approx(1.0)}


def test_base_load_held_not_at_a_solar_site_nor_without_a_shape(spark: SparkSession) -> None:
    # GIVEN the same drop at a site with generation, and at a meter without hourly amounts
    no_shape = [dict(r, hour_kwh=[None] * 24, hour_intervals=[0] * 24) for r in meter("DAILY")]
    rows = meter("SOLAR", BEHAVIOUR_DROP, generation=True) + no_shape
    # THEN the confounder holds for neither
    assert held(spark, rows) == {}


def explained_and_alerted(
    spark: SparkSession, rows: list[dict[str, Any]], rule: str
) -> tuple[set[tuple[str, str | None]], list[str]]:
    """Every rule run and scored on ``rows``: ``rule``'s findings as (device, the confounder
    that explains it), and the alerted devices."""
    ev = rule_inputs(spark, rows)
    found = checkpoint(rules.detect(ev, CONFIG), "findings")  # read twice, as in the job
    explained = {
        (r["device_id"], r["explained_by"]) for r in found.where(F.col("rule") == rule).collect()
    }
    return explained, [r["device_id"] for r in rules.score(found, ev, CONFIG).collect()]


def test_an_explained_drop_is_a_finding_but_not_an_alert(spark: SparkSession) -> None:
    # GIVEN a household whose use dropped to 0.64 of its baseline with its base load held,
    # and a meter slowed to 0.6
    rows = meter("AWAY", BEHAVIOUR_DROP) + meter("SLOW", SLOWED)
    # WHEN the rules run and the findings are scored
    drops, alerted = explained_and_alerted(spark, rows, "CONSUMPTION_DROP")
    # THEN both drops are findings; the household's is explained by its base load, and only
    # the slowed meter alerts
    assert drops == {("AWAY", "BASE_LOAD_HELD"), ("SLOW", None)}
    assert alerted == ["SLOW"]


def test_a_confounder_explaining_an_unknown_rule_is_a_config_error(spark: SparkSession) -> None:
    config = {
        **CONFIG,
        "confounders": {
            **CONFIG["confounders"],
            "BASE_LOAD_HELD": {
                **CONFIG["confounders"]["BASE_LOAD_HELD"],
                "explains": ["CONSUMPTION_DORP"],
            },
        },
    }
    with pytest.raises(ConfigError, match="explains unknown rules CONSUMPTION_DORP"):
        rules.detect(rule_inputs(spark, meter("A")), config)


# --- Confounders: DROP_ENDED ----------------------------------------------------------------


def away_until(last_day_away: int, level: float = 0.1) -> Hourly:
    """PROFILE at ``level`` up to W's day ``last_day_away`` (0-based), then as usual."""
    return lambda day: scaled(level if day <= W_DAYS[last_day_away] else 1.0)


def test_drop_ended_when_the_latest_days_are_back_at_the_usual_level(spark: SparkSession) -> None:
    # GIVEN a household away for W's first ten days, home for its last four; and a meter
    # slowed to 0.6 through W
    rows = meter("BACK", away_until(9)) + meter("SLOW", SLOWED)
    # WHEN the confounder looks at them THEN the drop ended for the first only
    assert holds(spark, "DROP_ENDED", rows) == {"BACK": pytest.approx(1.0)}


def test_drop_ended_not_just_below_its_threshold(spark: SparkSession) -> None:
    # GIVEN the latest three days at 0.86 and at 0.84 of the usual level
    rows = meter("ABOVE", lambda d: scaled(0.1 if d <= W_DAYS[10] else 0.86)) + meter(
        "BELOW", lambda d: scaled(0.1 if d <= W_DAYS[10] else 0.84)
    )
    assert holds(spark, "DROP_ENDED", rows) == {"ABOVE": pytest.approx(0.86)}


def test_drop_ended_needs_every_latest_day(spark: SparkSession) -> None:
    # GIVEN a household back home on W's last two days, and one whose last day has no data
    silent_last_day = [r for r in meter("SILENT", away_until(9)) if r["day"] != W_DAYS[-1]]
    rows = meter("TWO", away_until(11)) + silent_last_day
    # THEN the drop has not been seen to end for either
    assert holds(spark, "DROP_ENDED", rows) == {}


def test_drop_ended_compares_the_same_weekdays(spark: SparkSession) -> None:
    # GIVEN a shop closed at weekends (a tenth of its weekday use), back from a holiday for
    # W's last three days: Friday to Sunday, 15 November 2026 being a Sunday
    def shop(level: float) -> Hourly:
        return lambda day: scaled(level * (0.1 if day.isoweekday() >= 6 else 1.0))

    rows = meter("SHOP", lambda d: shop(0.1 if d <= W_DAYS[10] else 1.0)(d), shop(1.0))
    # WHEN the confounder looks at it THEN its last days match B's Fridays to Sundays
    assert holds(spark, "DROP_ENDED", rows) == {"SHOP": pytest.approx(1.0)}


def test_drop_ended_is_relative_to_the_class_drift(spark: SparkSession) -> None:
    # GIVEN a class of 20 at 1.3 (a cold spell) and a household back at its own baseline
    rows = peers(20, factor=lambda i: 1.3) + meter("BACK", away_until(9))
    # THEN it is back at 1 / 1.3 of where its class is: not the usual level
    assert "BACK" not in holds(spark, "DROP_ENDED", rows)


def test_a_drop_that_ended_is_a_finding_but_not_an_alert(spark: SparkSession) -> None:
    # GIVEN a household away for W's first ten days (r = 0.36) and a slowed meter
    rows = meter("BACK", away_until(9)) + meter("SLOW", SLOWED)
    # WHEN the rules run and the findings are scored
    drops, alerted = explained_and_alerted(spark, rows, "CONSUMPTION_DROP")
    # THEN the household's drop is explained by its return, and only the slowed meter alerts
    assert drops == {("BACK", "DROP_ENDED"), ("SLOW", None)}
    assert alerted == ["SLOW"]


# --- Confounders: DROP_BEFORE_WINDOW --------------------------------------------------------


def down_since(day: date, level: float, before: float = 1.0) -> Hourly:
    """PROFILE at ``before`` until ``day``, at ``level`` from it on."""
    return lambda d: scaled(before if d < day else level)


def test_drop_before_window_when_b_latest_days_already_held_w_level(spark: SparkSession) -> None:
    # GIVEN a household down to 0.6 since the middle of B (someone moved out), and a meter
    # slowed to 0.6 from W's first day
    rows = meter("MOVED", scaled(0.6), down_since(B_DAYS[14], 0.6)) + meter("SLOW", SLOWED)
    # WHEN the confounder looks at them THEN the drop is older than W for the first only
    assert holds(spark, "DROP_BEFORE_WINDOW", rows) == {"MOVED": pytest.approx(1.0)}


def test_drop_before_window_not_just_below_its_threshold(spark: SparkSession) -> None:
    # GIVEN two households at 0.7 since the middle of B, at 0.5775 and 0.5705 in W (0.825 and
    # 0.815 of B's latest level; the threshold is 0.82)
    rows = meter("ABOVE", scaled(0.5775), down_since(B_DAYS[14], 0.7)) + meter(
        "BELOW", scaled(0.5705), down_since(B_DAYS[14], 0.7)
    )
    assert holds(spark, "DROP_BEFORE_WINDOW", rows) == {"ABOVE": pytest.approx(0.825)}


def test_drop_before_window_is_not_a_few_days_away_at_the_end_of_b(spark: SparkSession) -> None:
    # GIVEN a meter slowed to 0.7 in W whose household was away for B's last five days (at a
    # tenth of its use): their mean would put B's latest days at 0.68, near W's level
    rows = meter("AWAY", scaled(0.7), down_since(B_DAYS[23], 0.1))
    # WHEN the confounder looks at it THEN the median of B's latest days is the usual level
    assert holds(spark, "DROP_BEFORE_WINDOW", rows) == {}


def test_drop_before_window_is_relative_to_the_class_drift(spark: SparkSession) -> None:
    # GIVEN a class of 20 at 1.3 in W (a cold spell) and a household that kept the level it
    # had since the middle of B
    rows = peers(20, factor=lambda i: 1.3) + meter(
        "MOVED", scaled(0.6), down_since(B_DAYS[14], 0.6)
    )
    # THEN it kept 1 / 1.3 of what its class has: it used less than B's latest days
    assert "MOVED" not in holds(spark, "DROP_BEFORE_WINDOW", rows)


def test_drop_before_window_needs_a_drop_in_b(spark: SparkSession) -> None:
    # GIVEN a meter without import on W's last six days (W's median day is as usual), and a
    # household at its usual level throughout
    rows = meter("ZEROED", lambda d: scaled(0.0 if d > W_DAYS[7] else 1.0)) + meter("SAME")
    # WHEN the confounder looks at them THEN neither dropped in B: nothing older than W
    assert holds(spark, "DROP_BEFORE_WINDOW", rows) == {}


def test_a_drop_before_the_window_is_a_finding_but_not_an_alert(spark: SparkSession) -> None:
    # GIVEN a household down to 0.6 since the middle of B (W's weeks at 0.75 of B's mean) and
    # a meter slowed to 0.6 from W's first day
    rows = meter("MOVED", scaled(0.6), down_since(B_DAYS[14], 0.6)) + meter("SLOW", SLOWED)
    # WHEN the rules run and the findings are scored
    drops, alerted = explained_and_alerted(spark, rows, "SUSTAINED_DROP")
    # THEN both are sustained drops; the household's is explained as older than W, and only
    # the slowed meter alerts
    assert drops == {("MOVED", "DROP_BEFORE_WINDOW"), ("SLOW", None)}
    assert alerted == ["SLOW"]


# --- Confounders: FLAT_BASELINE_PROFILE -----------------------------------------------------


def ripple(amplitude: float) -> list[float]:
    """A day of 1 kWh an hour, up and down by ``amplitude`` every other hour (its 24 hourly
    means vary by exactly ``amplitude`` of their mean)."""
    return [1.0 + (amplitude if h % 2 else -amplitude) for h in range(24)]


def test_flat_baseline_profile_holds_below_its_threshold_not_above(spark: SparkSession) -> None:
    # GIVEN baselines whose hourly means vary by 4 % and 6 %, and a household's
    rows = (
        meter("PLANT", ripple(0.04), ripple(0.04))
        + meter("SHAPED", ripple(0.06), ripple(0.06))
        + meter("HOME")
    )
    # THEN only the first has no shape to shift
    assert holds(spark, "FLAT_BASELINE_PROFILE", rows) == {"PLANT": pytest.approx(0.04)}


def test_a_shift_of_a_flat_profile_is_a_finding_but_not_an_alert(spark: SparkSession) -> None:
    # GIVEN a plant whose flat profile's ripple turned over (noise of 4 %), and a household
    # whose day is reversed
    rows = meter("PLANT", ripple(-0.04), ripple(0.04)) + meter("H6", PROFILE[::-1])
    # WHEN the rules run THEN both shifts are findings, the plant's explained by its flat
    # baseline, and only the reversed day alerts
    shifts, alerted = explained_and_alerted(spark, rows, "PROFILE_SHIFT")
    assert shifts == {("PLANT", "FLAT_BASELINE_PROFILE"), ("H6", None)}
    assert alerted == ["H6"]


# --- Confounders: SPREAD_HELD ---------------------------------------------------------------

# A steady kilowatt on top of every hour (electric heating, an appliance running around the
# clock): the day's swings unchanged, its mean up from 0.42 to 1.42 kWh an hour, so its
# coefficient of variation falls to 0.29 of B's.
HEATED = [v + 1.0 for v in PROFILE]


def test_spread_held_when_a_steady_load_came_on_top(spark: SparkSession) -> None:
    # GIVEN a heated household and a day replaced by its mean (h5)
    rows = meter("HEATED", HEATED) + meter("H5", flattened(0.0))
    # WHEN the confounder looks at them THEN the swings held for the first only
    assert holds(spark, "SPREAD_HELD", rows) == {"HEATED": pytest.approx(1.0)}


def test_spread_held_not_just_below_its_threshold(spark: SparkSession) -> None:
    # GIVEN the same steady kilowatt on top of swings kept at 0.41 and at 0.39 of B's
    rows = meter("ABOVE", [v + 1.0 for v in flattened(0.41)]) + meter(
        "BELOW", [v + 1.0 for v in flattened(0.39)]
    )
    assert holds(spark, "SPREAD_HELD", rows) == {"ABOVE": pytest.approx(0.41)}


def test_a_flatter_day_with_a_load_on_top_is_a_finding_but_not_an_alert(
    spark: SparkSession,
) -> None:
    # GIVEN a heated household and a day replaced by its mean
    rows = meter("HEATED", HEATED) + meter("H5", flattened(0.0))
    # WHEN the rules run THEN both are flatter than B; the heated one is explained, and only
    # the replayed mean alerts
    flat, alerted = explained_and_alerted(spark, rows, "FLAT_PROFILE")
    assert flat == {("HEATED", "SPREAD_HELD"), ("H5", None)}
    assert alerted == ["H5"]
