"""Generate a realistic smart-meter dataset in the data contract's format, with planted theft.

The population is a set of *sites* (service points): households, offices and shops, and
plants, each with one meter. Every site's load is a deterministic function of (seed, site,
15-minute slot): base load, morning and evening peaks that move on weekends and public
holidays, lighting that follows the sunset, electric heating that follows the day's
temperature, a slow per-site drift, day-to-day and week-to-week activity, slot noise and
appliance spikes, all on the local clock (daylight saving time included);
rooftop solar nets import down and exports the surplus. Honest sites may have their meter
exchanged, be newly connected, roll their register over, go silent for a while, go on
holiday, change their routine for good, or stand empty for a few days before new occupants
move in; every reading may be lost in transit.

On chosen shares of sites the generator plants, for all of the detection window W, the six
attacks of Jokar et al. (``h1`` … ``h6``) and the event-level cases of the detection rules,
and on further shares partial thieves: ``h1`` and ``h3`` with α in (0.5, 0.8].
The ground truth (one row per device: its site, case and parameters) is written beside the
four tables.

Everything runs on built-in Spark functions: pseudo-randomness is ``xxhash64`` of the seed,
a salt and ids; readings come from exploding (component, slot) ranges; register values are a
running sum over one window per component. No Python runs per reading.

Run: ``DEBUG=1 python jobs/tools/generate_data.py --config CONFIG --devices 2000 --output DIR``
or with ``spark-submit --py-files packages.zip --files CONFIG jobs/tools/generate_data.py …``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, "") and "PYSPARK_GATEWAY_PORT" not in os.environ:
    sys.path.insert(1, str(Path(__file__).resolve().parents[2]))

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from dependencies.progress import Progress
from dependencies.run_window import RunWindow
from dependencies.spark import start_spark
from dependencies.tables import MEASURED_DATE, TABLES
from dependencies.transforms import correlation
from jobs.usage import EXPORT_KWH, IMPORT_KWH, TAMPER_COUNT

APP_NAME = "datalake_generate"
GROUND_TRUTH = "ground_truth"
SETTINGS_FILE = "generator.json"
COMPLETE_MARKER = "_GENERATED"

SLOT_MINUTES = 15
SLOTS_PER_DAY = 24 * 60 // SLOT_MINUTES
SLOT_HOURS = SLOT_MINUTES / 60

HONEST = "honest"
# The six attacks of Jokar et al., applied to every day of W.
ATTACKS = ("h1", "h2", "h3", "h4", "h5", "h6")
# The event-level cases of the detection rules.
EVENTS = (
    "UNINSTALLED_CONSUMPTION",
    "REGISTER_ROLLBACK",
    "REVERSE_FLOW",
    "TAMPER_EVENTS",
    "ZERO_CONSUMPTION",
)
CASES = ATTACKS + EVENTS
# Honest situations that look unusual; a site has at most one.
HONEST_EVENTS = (
    "meter_exchange",
    "new_install",
    "rollover",
    "comm_gap",
    "absence",
    "routine_change",
    "new_occupants",
)
# Partial theft: extra h1 / h3 sites whose level α (h1's factor, the mean of h3's γ_t) lies in
# PARTIAL_ALPHA, the cut of 20-50 % that honest ups and downs make hard to tell.
PARTIAL_CASES = ("h1", "h3")
PARTIAL_ALPHA = (0.5, 0.8)
PARTIAL_PREFIX = "partial_"

RESIDENTIAL, COMMERCIAL, INDUSTRIAL = "RESIDENTIAL", "COMMERCIAL", "INDUSTRIAL"
REGISTER_MAX = {RESIDENTIAL: 99999.999, COMMERCIAL: 9999999.999, INDUSTRIAL: 9999999.999}
MANUFACTURERS = ("Landis+Gyr", "Itron", "Kamstrup", "Iskra", "Sagemcom")
ROWS_PER_PARTITION = 2_000_000


@dataclass(frozen=True)
class GeneratorSettings:
    """Everything that shapes a generated dataset; the defaults are the only ones."""

    devices: int = 2000
    run_date: date = date(2026, 11, 15)
    seed: int = 7
    output: str = "data/generated"
    format: str = "parquet"
    # Share of sites for each planted case (CASE=SHARE on the command line).
    case_shares: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CASES, 0.015))
    # Share of the honest sites for each honest event.
    honest_event_shares: dict[str, float] = field(
        default_factory=lambda: {
            "meter_exchange": 0.02,
            "new_install": 0.01,
            "rollover": 0.02,
            "comm_gap": 0.05,
            "absence": 0.03,
            "routine_change": 0.03,
            "new_occupants": 0.01,
        }
    )
    # Share of sites for each partially stolen case (h1, h3 with α in PARTIAL_ALPHA).
    partial_shares: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(PARTIAL_CASES, 0.04)
    )
    commercial_share: float = 0.10
    industrial_share: float = 0.03
    solar_share: float = 0.15
    electric_heating_share: float = 0.10
    interval_share: float = 0.20
    tamper_counter_share: float = 0.50
    reading_loss: float = 0.002
    time_zone: str = "Europe/Berlin"
    longitude: float = 10.0
    latitude: float = 50.0
    holidays: tuple[str, ...] = ("01-01", "05-01", "10-03", "11-01", "12-25", "12-26")


# --- deterministic pseudo-randomness ----------------------------------------------------------


def _salt(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def uniform(seed: int, salt: str, *keys: Column) -> Column:
    """U[0, 1) from the hash of (seed, salt, keys): the same inputs, the same number."""
    return F.pmod(F.xxhash64(F.lit(seed), F.lit(_salt(salt)), *keys), F.lit(1 << 53)) / float(
        1 << 53
    )


def normal(seed: int, salt: str, *keys: Column) -> Column:
    """N(0, 1) by Box-Muller from the two 26-bit halves of one hash."""
    bits = F.xxhash64(F.lit(seed), F.lit(_salt(salt)), *keys)
    half = float(1 << 26)
    u1 = 1.0 - F.pmod(bits, F.lit(1 << 26)) / half
    u2 = F.pmod(F.shiftright(bits, 26), F.lit(1 << 26)) / half
    return F.sqrt(-2.0 * F.log(u1)) * F.cos(2 * math.pi * u2)


def between(low: float, high: float, u: Column) -> Column:
    """``u`` in [0, 1) mapped onto [low, high)."""
    return F.lit(low) + (high - low) * u


def pick(u: Column, shares: dict[str, float], otherwise: str) -> Column:
    """The name whose slice of [0, 1) (in order, sized by share) holds ``u``."""
    result, upper = None, 0.0
    for name, share in shares.items():
        upper += share
        result = F.when(u < upper, name) if result is None else result.when(u < upper, name)
    return F.lit(otherwise) if result is None else result.otherwise(otherwise)


def bump(hour: Column, center: Column, width: float | Column) -> Column:
    """A Gaussian bump around ``center`` on the 24-hour clock (wraps at midnight)."""
    distance = F.abs(hour - center)
    distance = F.least(distance, 24 - distance)
    return F.exp(-0.5 * (distance / width) * (distance / width))


def rise(x: Column) -> Column:
    """A smooth step from 0 to 1 around ``x = 0``."""
    return 1 / (1 + F.exp(-x))


# --- the population ---------------------------------------------------------------------------


def with_partial_theft(sites: DataFrame) -> DataFrame:
    """Split a drawn ``partial_h1``/``partial_h3`` into its case and ``partial_theft``."""
    drawn = F.col("case")
    return sites.withColumns(
        {
            "partial_theft": drawn.startswith(PARTIAL_PREFIX),
            "case": F.regexp_replace(drawn, f"^{PARTIAL_PREFIX}", ""),
        }
    )


def with_household_level(frame: DataFrame) -> DataFrame:
    """Per (site, day) of the load: ``household_level``, the lasting change of a routine
    change or of new occupants from ``change_day`` on; the days a place stands empty
    between two occupants count as ``away``."""
    day, change_day = F.col("day"), F.col("change_day")
    vacant = (day >= change_day) & (day < change_day + F.col("vacant_days"))
    return frame.withColumns(
        {
            "away": F.col("away") | vacant,
            "household_level": F.when(
                day >= change_day + F.col("vacant_days"), F.col("change_factor")
            ).otherwise(1.0),
        }
    )


class Generator:
    """Builds the tables of one dataset from its settings and the run's window."""

    def __init__(self, spark: SparkSession, settings: GeneratorSettings, window: RunWindow) -> None:
        self.spark = spark
        self.s = settings
        self.window = window
        self.days = window.baseline_days + window.window_days
        self.slots = self.days * SLOTS_PER_DAY
        self.window_slot = window.baseline_days * SLOTS_PER_DAY
        self.t0 = int(window.baseline_start.timestamp())

    def u(self, salt: str, *keys: Column | str) -> Column:
        return uniform(self.s.seed, salt, *[F.col(k) if isinstance(k, str) else k for k in keys])

    def n(self, salt: str, *keys: Column | str) -> Column:
        return normal(self.s.seed, salt, *[F.col(k) if isinstance(k, str) else k for k in keys])

    def stamp(self, slot: Column) -> Column:
        """The instant at which ``slot`` (15-minute steps from B's start) begins."""
        return F.timestamp_seconds(F.lit(self.t0) + slot.cast("long") * (SLOT_MINUTES * 60))

    def sites(self) -> DataFrame:
        """One row per site: class, case, honest event and every per-site parameter."""
        s = self.s
        w_slots = self.slots - self.window_slot
        klass = (
            F.when(self.u("class", "site") < s.industrial_share, INDUSTRIAL)
            .when(self.u("class", "site") < s.industrial_share + s.commercial_share, COMMERCIAL)
            .otherwise(RESIDENTIAL)
        )
        sites = (
            self.spark.range(s.devices)
            .withColumnRenamed("id", "site")
            .select(
                "site",
                klass.alias("customer_class"),
                self.planted_case().alias("case"),
            )
            .transform(with_partial_theft)
        )
        honest = F.col("case") == HONEST
        residential = F.col("customer_class") == RESIDENTIAL
        event = F.when(honest, pick(self.u("event", "site"), s.honest_event_shares, ""))
        sites = sites.withColumn("honest_event", F.nullif(event, F.lit("")))
        is_event = F.col("honest_event").eqNullSafe
        solar = (
            residential
            & (self.u("solar", "site") < s.solar_share)
            & (F.col("case") != "REVERSE_FLOW")
        )
        interval = (
            (self.u("reading_type", "site") < s.interval_share)
            & ~F.col("case").isin("REGISTER_ROLLBACK")
            & ~is_event("rollover")
        )
        event_slot = self.window_slot + F.floor(self.u("event_slot", "site") * (w_slots // 2))
        zero_days = 5 + F.floor(self.u("zero_days", "site") * (self.window.window_days - 4))
        return (
            sites.select(
                "*",
                solar.alias("has_generation"),
                F.when(interval, "INTERVAL").otherwise("CUMULATIVE").alias("reading_type"),
                (residential & (self.u("heating", "site") < s.electric_heating_share)).alias(
                    "electric_heating"
                ),
                (
                    (self.u("tamper", "site") < s.tamper_counter_share)
                    | (F.col("case") == "TAMPER_EVENTS")
                ).alias("has_tamper_counter"),
                # load shape
                F.exp(0.4 * self.n("scale", "site")).alias("scale"),
                between(0.10, 0.30, self.u("base", "site")).alias("base_kw"),
                between(0.3, 1.0, self.u("morning_kw", "site")).alias("morning_kw"),
                between(0.6, 1.6, self.u("evening_kw", "site")).alias("evening_kw"),
                between(6.0, 8.0, self.u("morning_at", "site")).alias("morning_at"),
                between(18.0, 21.0, self.u("evening_at", "site")).alias("evening_at"),
                between(0.05, 0.3, self.u("light_kw", "site")).alias("light_kw"),
                between(22.0, 24.5, self.u("bedtime", "site")).alias("bedtime"),
                between(0.15, 0.45, self.u("noise", "site")).alias("noise_sigma"),
                between(0.01, 0.05, self.u("spikes", "site")).alias("spike_rate"),
                (0.06 * self.n("trend", "site")).alias("trend"),
                between(1.0, 4.0, self.u("heat_kw", "site")).alias("heat_kw"),
                F.exp(between(math.log(5), math.log(80), self.u("peak_kw", "site"))).alias(
                    "commercial_kw"
                ),
                F.exp(between(math.log(100), math.log(1500), self.u("peak_kw", "site"))).alias(
                    "industrial_kw"
                ),
                between(6.5, 9.0, self.u("opens", "site")).alias("opens_at"),
                between(17.0, 20.0, self.u("closes", "site")).alias("closes_at"),
                (self.u("saturday", "site") < 0.4).alias("open_saturday"),
                (self.u("shifts", "site") < 0.5).alias("three_shifts"),
                between(0.25, 0.5, self.u("base_share", "site")).alias("base_share"),
                between(3.0, 10.0, self.u("pv_kwp", "site")).alias("pv_kwp"),
                # planted cases
                between(0.1, 0.8, self.u("alpha", "site")).alias("alpha"),
                event_slot.cast("int").alias("event_slot"),
                zero_days.cast("int").alias("zero_days"),
                (
                    self.window.baseline_days
                    + F.floor(
                        self.u("zero_start", "site") * (self.window.window_days - zero_days + 1)
                    )
                )
                .cast("int")
                .alias("zero_start_day"),
                between(0.3, 1.0, self.u("reverse_share", "site")).alias("reverse_share"),
                (1 + F.floor(self.u("rollback", "site") * 7)).cast("int").alias("rollback_days"),
                (1 + F.floor(self.u("tamper_events", "site") * 3))
                .cast("int")
                .alias("tamper_events"),
                # honest events
                (
                    SLOTS_PER_DAY
                    + F.floor(self.u("exchange", "site") * (self.slots - 2 * SLOTS_PER_DAY))
                )
                .cast("int")
                .alias("exchange_slot"),
                (
                    SLOTS_PER_DAY
                    + F.floor(self.u("new_install", "site") * (self.slots - 4 * SLOTS_PER_DAY))
                )
                .cast("int")
                .alias("install_slot"),
                F.floor(self.u("gap_start", "site") * self.slots).cast("int").alias("gap_start"),
                F.floor(
                    F.exp(
                        between(math.log(4), math.log(4 * SLOTS_PER_DAY), self.u("gap_len", "site"))
                    )
                )
                .cast("int")
                .alias("gap_slots"),
                F.floor(self.u("absence", "site") * self.days).cast("int").alias("absence_day"),
                (3 + F.floor(self.u("absence_len", "site") * 8)).cast("int").alias("absence_days"),
            )
            .transform(self.with_partial_alpha)
            .transform(self.with_household_changes)
        )

    def planted_case(self) -> Column:
        """The case of a site: the planted cases' slices of [0, 1) first, then the partial
        thefts' (``partial_h1``, ``partial_h3``), the rest honest."""
        partial = {
            f"{PARTIAL_PREFIX}{case}": share for case, share in self.s.partial_shares.items()
        }
        return pick(self.u("case", "site"), {**self.s.case_shares, **partial}, HONEST)

    def with_partial_alpha(self, sites: DataFrame) -> DataFrame:
        """A partial thief's level α, drawn in PARTIAL_ALPHA (upper end included)."""
        low, high = PARTIAL_ALPHA
        alpha = F.lit(high) - (high - low) * self.u("partial_alpha", "site")
        return sites.withColumn(
            "alpha", F.when(F.col("partial_theft"), alpha).otherwise(F.col("alpha"))
        )

    def with_household_changes(self, sites: DataFrame) -> DataFrame:
        """When an honest site's use changes for good: ``change_day`` (any day of B or W),
        the lasting factor ``change_factor`` of a routine change (someone moves out or in,
        a new appliance, work from home ends or starts), and for new occupants the days
        the place stands empty before them (``vacant_days``) and their own level."""
        event = F.col("honest_event")
        routine = F.exp(between(math.log(0.65), math.log(1.5), self.u("routine_factor", "site")))
        occupants = F.exp(0.4 * self.n("occupants_scale", "site"))
        return sites.withColumns(
            {
                "change_day": F.floor(self.u("change_day", "site") * self.days).cast("int"),
                "change_factor": F.when(event.eqNullSafe("routine_change"), routine)
                .when(event.eqNullSafe("new_occupants"), occupants)
                .otherwise(1.0),
                "vacant_days": F.when(
                    event.eqNullSafe("new_occupants"), F.floor(self.u("vacant_days", "site") * 11)
                )
                .otherwise(0)
                .cast("int"),
            }
        )

    def h3_gamma(self, slot: Column) -> Column:
        """h3's factor of one interval: γ_t in [0.1, 0.8], or within 0.1 of α for a partial
        thief."""
        spread = self.u("gamma", "site", slot)
        return F.when(
            F.col("partial_theft"), F.col("alpha") + between(-0.1, 0.1, spread)
        ).otherwise(between(0.1, 0.8, spread))

    def devices(self, sites: DataFrame) -> DataFrame:
        """One row per meter: a site's meter, and its replacement where it was exchanged.

        ``first_slot``/``last_slot``: the meter records the intervals in [first, last)."""
        exchanged = F.col("honest_event").eqNullSafe("meter_exchange")
        frame = sites.withColumn(
            "replacement",
            F.explode(
                F.when(exchanged, F.array(F.lit(False), F.lit(True))).otherwise(
                    F.array(F.lit(False))
                )
            ),
        )
        device_id = F.concat(
            F.lit("M"),
            F.lpad(F.col("site").cast("string"), 7, "0"),
            F.when(F.col("replacement"), F.lit("R")).otherwise(F.lit("")),
        )
        first = (
            F.when(F.col("replacement"), F.col("exchange_slot"))
            .when(F.col("honest_event").eqNullSafe("new_install"), F.col("install_slot"))
            .otherwise(F.lit(0))
        )
        last = F.when(exchanged & ~F.col("replacement"), F.col("exchange_slot")).otherwise(
            F.lit(self.slots)
        )
        rollover = F.col("honest_event").eqNullSafe("rollover")
        register_max = F.when(
            F.col("customer_class") == RESIDENTIAL, REGISTER_MAX[RESIDENTIAL]
        ).otherwise(REGISTER_MAX[COMMERCIAL])
        start_value = (
            F.when(F.col("replacement"), between(0.0, 5.0, self.u("new_register", "site")))
            .when(rollover, register_max - between(1.0, 100.0, self.u("rollover_at", "site")))
            .otherwise(register_max * between(0.05, 0.85, self.u("register", "site")))
        )
        return frame.select(
            "*",
            device_id.alias("device_id"),
            F.concat(F.lit("SP"), F.lpad(F.col("site").cast("string"), 7, "0")).alias(
                "service_point_id"
            ),
            first.alias("first_slot"),
            last.alias("last_slot"),
            register_max.alias("register_max"),
            start_value.alias("start_value"),
        )

    # --- load ----------------------------------------------------------------------------------

    def calendar(self) -> DataFrame:
        """One row per interval ``slot`` of B and W (and the notional one before B): its
        day, the local clock and calendar (weekends, public holidays, DST), and what the
        whole region shares that day: daylight, temperature, cloud cover, the clear-sky
        solar arc, lighting after sunset, and the plants' shift pattern."""
        s = self.s
        slot = F.col("slot")
        day = F.floor(slot / SLOTS_PER_DAY).cast("int")
        on = F.date_add(F.lit(self.window.baseline_start_date), day)
        middle = self.stamp(slot) + F.expr(f"INTERVAL {SLOT_MINUTES * 30} SECONDS")
        local = F.from_utc_timestamp(middle, s.time_zone)
        weekday = F.dayofweek(local)  # 1 = Sunday, 7 = Saturday
        holiday = F.date_format(local, "MM-dd").isin(*s.holidays)
        year_angle = 2 * math.pi * (F.dayofyear(on) - 80) / 365.25
        tilt = 23.44 * math.pi / 180 * F.sin(year_angle)
        latitude = s.latitude * math.pi / 180
        daylight = 24 / math.pi * F.acos(-F.tan(F.lit(latitude)) * F.tan(tilt))
        seasonal = 10 - 9 * F.cos(2 * math.pi * (F.dayofyear(on) - 20) / 365.25)
        anomaly = sum(
            amplitude
            * F.sin(2 * math.pi * day / period + 2 * math.pi * self.u(f"weather{period}", F.lit(0)))
            for amplitude, period in ((2.5, 17.0), (2.0, 9.0), (1.5, 5.0))
        )
        frame = (
            self.spark.range(-1, self.slots)
            .select(F.col("id").cast("int").alias("slot"))
            .select(
                "slot",
                day.alias("day"),
                (F.hour(local) + F.minute(local) / 60).alias("hour"),
                (F.hour(middle) + F.minute(middle) / 60 + s.longitude / 15).alias("solar_hour"),
                ((F.unix_seconds(local) - F.unix_seconds(middle)) / 3600).alias("offset_hours"),
                (weekday == 7).alias("saturday"),
                ((weekday == 1) | holiday).alias("closed"),
                daylight.alias("daylight_hours"),
                F.greatest(16 - (seasonal + anomaly), F.lit(0.0)).alias("heating_degrees"),
                F.pow(self.u("cloud", day), 0.7).alias("cloud_cover"),
            )
        )
        hour, daylight = F.col("hour"), F.col("daylight_hours")
        sunset = 12 - s.longitude / 15 + daylight / 2 + F.col("offset_hours")
        arc = F.greatest(
            F.sin(math.pi * (F.col("solar_hour") - (12 - daylight / 2)) / daylight), F.lit(0.0)
        )
        height = F.greatest(F.least((daylight - 7) / 9, F.lit(1.0)), F.lit(0.1))
        dips = (
            1
            - 0.15
            * (
                bump(hour, F.lit(6.0), 0.3)
                + bump(hour, F.lit(14.0), 0.3)
                + bump(hour, F.lit(22.0), 0.3)
            )
            - 0.1 * bump(hour, F.lit(12.0), 0.4)
        )
        return frame.select(
            "slot",
            "day",
            "hour",
            "saturday",
            "closed",
            "cloud_cover",
            (F.col("saturday") | F.col("closed")).alias("free"),
            (F.col("heating_degrees") / 10).alias("cold"),
            rise((hour - sunset) / 0.4).alias("after_sunset"),
            bump(hour, F.lit(13.0), 2.5).alias("midday"),
            (F.pow(arc, 1.3) * height).alias("clear_sky"),
            dips.alias("shift_dips"),
            (rise((hour - 6) / 0.2) * rise((22 - hour) / 0.2)).alias("two_shifts"),
        )

    def interval_slots(
        self, components: DataFrame, first: Column, last: Column, partitions: int
    ) -> DataFrame:
        """One row per (component, slot) for slots ``first`` … ``last``, with the calendar;
        partitioned by component."""
        return (
            components.repartition(partitions, "measuring_component_id")
            .withColumn("slot", F.explode(F.sequence(first, last)))
            .join(F.broadcast(self.calendar()), "slot", "left")
        )

    def with_load(self, frame: DataFrame) -> DataFrame:
        """Add the metered ``honest_import`` and ``honest_export`` (kWh) of each row's interval
        ``slot``: the site's load net of its solar production. ``frame`` holds the site's
        columns and the calendar's."""
        day, slot, hour = F.col("day"), F.col("slot"), F.col("hour")
        free, cold = F.col("free"), F.col("cold")
        frame = frame.withColumns(
            {
                "away": (
                    (day >= F.col("absence_day"))
                    & (day < F.col("absence_day") + F.col("absence_days"))
                    & F.col("honest_event").eqNullSafe("absence")
                ),
                # Day-to-day and week-to-week changes of a household's routine (guests, travel).
                "activity": F.exp(
                    0.15 * self.n("activity", "site", day)
                    + 0.12 * self.n("week", "site", F.floor(day / 7))
                ),
                "drift": 1 + F.col("trend") * (day - self.days / 2) / self.days,
                "slot_noise": self.n("noise", "site", slot),
            }
        ).transform(with_household_level)
        away, activity, drift = F.col("away"), F.col("activity"), F.col("drift")

        # Households: fridge and standby, two peaks, midday at home on free days, lighting
        # from sunset to bedtime, electric heating, appliance spikes.
        morning = (
            F.col("morning_kw")
            * F.when(free, 0.8).otherwise(1.0)
            * bump(hour, F.col("morning_at") + F.when(free, 1.5).otherwise(0.0), 1.0)
        )
        evening = F.col("evening_kw") * bump(hour, F.col("evening_at"), 1.6)
        midday = F.when(free, 0.5).otherwise(0.1) * F.col("morning_kw") * F.col("midday")
        light = F.col("light_kw") * F.col("after_sunset") * rise((F.col("bedtime") - hour) / 0.4)
        active = F.when(away, 0.05).otherwise(activity) * (morning + evening + midday + light)
        sigma = F.col("noise_sigma")
        noise = F.exp(sigma * F.col("slot_noise") - sigma * sigma / 2)
        heating = F.when(
            F.col("electric_heating"),
            F.col("heat_kw") * cold * F.when(away, 0.5).otherwise(0.6 + 0.4 * F.col("midday")),
        ).otherwise(0.0)
        spike_u = self.u("spike", "site", slot)
        spike = F.when(
            ~away & (spike_u < F.col("spike_rate")), 0.5 + 2.0 * spike_u / F.col("spike_rate")
        ).otherwise(0.0)
        household = F.col("scale") * ((F.col("base_kw") + active) * drift * noise + heating) + spike

        # Offices and shops: a base (ventilation, refrigeration) and opening hours.
        open_day = (
            F.when(F.col("closed") | away, 0.0)
            .when(F.col("saturday"), F.when(F.col("open_saturday"), 0.7).otherwise(0.0))
            .otherwise(1.0)
        )
        open_hours = rise((hour - F.col("opens_at")) / 0.3) * rise(
            (F.col("closes_at") - hour) / 0.3
        )
        commercial = (
            F.col("commercial_kw")
            * (F.col("base_share") + (1 - F.col("base_share")) * open_day * open_hours * activity)
            * drift
            * (1 + 0.3 * cold)
            * F.exp(0.08 * F.col("slot_noise"))
        )

        # Plants: two or three shifts on working days, dips at shift changes, low weekends.
        shift_day = F.when(free | away, 0.35).otherwise(1.0)
        shift_hours = F.when(F.col("three_shifts"), F.lit(1.0)).otherwise(F.col("two_shifts"))
        industrial = (
            F.col("industrial_kw")
            * (
                F.col("base_share")
                + (1 - F.col("base_share")) * shift_day * shift_hours * F.col("shift_dips")
            )
            * drift
            * F.exp(0.05 * F.col("slot_noise"))
        )

        load_kw = (
            F.when(F.col("customer_class") == RESIDENTIAL, household)
            .when(F.col("customer_class") == COMMERCIAL, commercial)
            .otherwise(industrial)
        )

        # Rooftop solar: the clear-sky arc, clouds per day and site, passing clouds per slot.
        clouds = F.least(
            F.greatest(F.col("cloud_cover") + 0.15 * self.n("clouds", "site", day), F.lit(0.0)),
            F.lit(1.0),
        )
        pv_kw = F.when(
            F.col("has_generation"),
            F.col("pv_kwp")
            * 0.8
            * F.col("clear_sky")
            * (1 - 0.75 * clouds * (0.5 + 0.5 * self.u("passing_cloud", "site", slot))),
        ).otherwise(0.0)

        frame = frame.withColumn("net_kw", load_kw * F.col("household_level") - pv_kw)
        return frame.withColumns(
            {
                "honest_import": F.greatest(F.col("net_kw"), F.lit(0.0)) * SLOT_HOURS,
                "honest_export": F.greatest(-F.col("net_kw"), F.lit(0.0)) * SLOT_HOURS,
            }
        )

    # --- readings ------------------------------------------------------------------------------

    def components(self, devices: DataFrame) -> DataFrame:
        """One row per measuring component of a device."""
        kinds = F.array(
            F.lit(IMPORT_KWH),
            F.when(
                F.col("has_generation")
                | ((F.col("case") == "REVERSE_FLOW") & ~F.col("replacement")),
                F.lit(EXPORT_KWH),
            ),
            F.when(F.col("has_tamper_counter") & ~F.col("replacement"), F.lit(TAMPER_COUNT)),
        )
        frame = devices.withColumn("component_type", F.explode(F.array_compact(kinds)))
        suffix = {IMPORT_KWH: "-IMP", EXPORT_KWH: "-EXP", TAMPER_COUNT: "-TMP"}
        tamper = F.col("component_type") == TAMPER_COUNT
        return frame.select(
            "*",
            F.concat(
                "device_id",
                F.when(tamper, suffix[TAMPER_COUNT])
                .when(F.col("component_type") == EXPORT_KWH, suffix[EXPORT_KWH])
                .otherwise(suffix[IMPORT_KWH]),
            ).alias("measuring_component_id"),
            F.when(tamper, "CUMULATIVE")
            .otherwise(F.col("reading_type"))
            .alias("component_reading_type"),
            F.when(tamper, 1440).otherwise(SLOT_MINUTES).alias("interval_minutes"),
        )

    def interval_readings(self, components: DataFrame) -> DataFrame:
        """Readings of the 15-minute import and export components: amounts per interval,
        the planted attack, then register values (a running sum per component), and whether
        each reading is ``delivered`` (not lost in a communication gap or in transit)."""
        narrow = self.interval_amounts(components)
        running = (
            Window.partitionBy("measuring_component_id")
            .orderBy("day", "slot")
            .rowsBetween(Window.unboundedPreceding, Window.currentRow)
        )
        component = (
            Window.partitionBy("measuring_component_id")
            .orderBy("day", "slot")
            .rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
        )
        fallen = F.when(F.col("wound_back"), F.sum("rewound").over(component)).otherwise(0.0)
        register = F.pmod(
            F.col("start_value") + F.sum("amount").over(running) - fallen, F.col("register_max")
        )
        value = F.when(F.col("cumulative"), register).otherwise(F.col("amount"))
        return narrow.select(
            "measuring_component_id",
            self.stamp(F.col("slot") + 1).alias("measured_at"),
            F.round(value, 3).alias("value"),
            "delivered",
        )

    def interval_amounts(self, components: DataFrame) -> DataFrame:
        """Per (energy component, slot): the honest and the metered amount (the planted
        attack applied) and what the register needs (start value, wound-back amounts)."""
        energy = components.where(F.col("component_type") != TAMPER_COUNT)
        partitions = max(2, math.ceil(self.s.devices * self.slots / ROWS_PER_PARTITION))
        cumulative = F.col("component_reading_type") == "CUMULATIVE"
        # A register's opening read closes a notional interval just before its first one.
        first = F.when(cumulative, F.col("first_slot") - 1).otherwise(F.col("first_slot"))
        frame = self.with_load(
            self.interval_slots(energy, first, F.col("last_slot") - 1, partitions)
        )

        # Everything that needs only this row, computed before the rows are sorted.
        slot, case, x = F.col("slot"), F.col("case"), F.col("honest_import")
        slot_of_day = slot - F.col("day") * SLOTS_PER_DAY
        gamma = self.h3_gamma(slot)
        h2_slots = F.floor(between(16, SLOTS_PER_DAY + 1, self.u("h2_length", "site", "day")))
        h2_start = F.floor(self.u("h2_start", "site", "day") * (SLOTS_PER_DAY + 1 - h2_slots))
        h2_off = (slot_of_day >= h2_start) & (slot_of_day < h2_start + h2_slots)
        is_import = F.col("component_type") == IMPORT_KWH
        in_w = (slot >= self.window_slot) & is_import
        attacked = (
            F.when(~in_w, x)
            .when(case == "h1", F.col("alpha") * x)
            .when(case == "h2", F.when(h2_off, 0.0).otherwise(x))
            .when(case == "h3", gamma * x)
            .when(
                (case == "ZERO_CONSUMPTION")
                & (F.col("day") >= F.col("zero_start_day"))
                & (F.col("day") < F.col("zero_start_day") + F.col("zero_days")),
                0.0,
            )
            .otherwise(x)
        )
        reversed_flow = (case == "REVERSE_FLOW") & (slot >= F.col("event_slot"))
        amount = (
            F.when(slot < F.col("first_slot"), 0.0)
            .when(is_import & reversed_flow, attacked * (1 - F.col("reverse_share")))
            .when(is_import, attacked)
            .when(reversed_flow, F.col("honest_export") + x * F.col("reverse_share"))
            .otherwise(F.col("honest_export"))
        )
        # A wound-back register reads, from the event on, what it read ``rollback_days`` earlier.
        wound_back = is_import & (case == "REGISTER_ROLLBACK")
        rewound = F.when(
            wound_back
            & (slot >= F.col("event_slot") - F.col("rollback_days") * SLOTS_PER_DAY)
            & (slot < F.col("event_slot")),
            amount,
        )
        start_value = F.when(is_import, F.col("start_value")).otherwise(
            between(0.0, 500.0, self.u("export_register", "site"))
        )
        measured_slot = slot + 1
        in_gap = (
            F.col("honest_event").eqNullSafe("comm_gap")
            & (measured_slot > F.col("gap_start"))
            & (measured_slot <= F.col("gap_start") + F.col("gap_slots"))
        )
        lost = self.u("lost", "measuring_component_id", measured_slot) < self.s.reading_loss
        narrow = frame.select(
            "measuring_component_id",
            "slot",
            "day",
            "honest_import",
            F.when(in_w & case.isin("h4", "h5", "h6"), case).alias("day_attack"),
            F.when(in_w & (case == "h4"), gamma).alias("gamma"),
            amount.alias("amount"),
            cumulative.alias("cumulative"),
            start_value.alias("start_value"),
            "register_max",
            F.when(wound_back, slot >= F.col("event_slot")).otherwise(False).alias("wound_back"),
            rewound.alias("rewound"),
            (~in_gap & ~lost).alias("delivered"),
        )

        # The attacks on the whole day (h4, h5, h6) and the register's running sum: two
        # windows on rows sorted by (component, day, slot) - one sort serves both.
        day_attack = F.col("day_attack")
        same_day = (
            Window.partitionBy("measuring_component_id", "day")
            .orderBy("slot")
            .rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
        )
        day_mean = F.avg(F.when(day_attack.isin("h4", "h5"), F.col("honest_import"))).over(same_day)
        h6_day = F.collect_list(F.when(day_attack == "h6", F.col("honest_import"))).over(same_day)
        mirrored = F.element_at(
            h6_day, (SLOTS_PER_DAY - (F.col("slot") - F.col("day") * SLOTS_PER_DAY)).cast("int")
        )
        return narrow.withColumn(
            "amount",
            F.when(day_attack == "h4", F.col("gamma") * day_mean)
            .when(day_attack == "h5", day_mean)
            .when(day_attack == "h6", mirrored)
            .otherwise(F.col("amount")),
        )

    def tamper_readings(self, components: DataFrame) -> DataFrame:
        """Daily reads of the tamper counters, at UTC midnight; planted events step them."""
        counters = components.where(F.col("component_type") == TAMPER_COUNT)
        first_day = F.ceil(F.col("first_slot") / SLOTS_PER_DAY)
        last_day = F.floor(F.col("last_slot") / SLOTS_PER_DAY)
        frame = counters.withColumn("read_day", F.explode(F.sequence(first_day, last_day)))
        event_day = F.floor(F.col("event_slot") / SLOTS_PER_DAY)
        stepped = (F.col("case") == "TAMPER_EVENTS") & (F.col("read_day") > event_day)
        value = F.floor(self.u("tamper_history", "site") * 4) + F.when(
            stepped, F.col("tamper_events")
        ).otherwise(0)
        measured_slot = F.col("read_day") * SLOTS_PER_DAY
        in_gap = (
            F.col("honest_event").eqNullSafe("comm_gap")
            & (measured_slot > F.col("gap_start"))
            & (measured_slot <= F.col("gap_start") + F.col("gap_slots"))
        )
        return frame.select(
            "measuring_component_id",
            self.stamp(measured_slot).alias("measured_at"),
            value.cast("double").alias("value"),
            (~in_gap).alias("delivered"),
        )

    def measurements(self, components: DataFrame) -> DataFrame:
        """All readings as delivered: communication gaps and lost readings removed."""
        readings = self.interval_readings(components).unionByName(self.tamper_readings(components))
        return readings.where("delivered").select(
            "measuring_component_id",
            "measured_at",
            "value",
            F.date_format("measured_at", "yyyy-MM-dd").alias(MEASURED_DATE),
        )

    def install_events(self, devices: DataFrame) -> DataFrame:
        """One install period per device; the exchanged meter's ends when its replacement's
        begins; a planted uninstalled-consumption meter is recorded as removed in W."""
        long_ago = F.timestamp_seconds(
            F.lit(self.t0)
            - F.floor(between(30, 3000, self.u("installed", "site")) * 86400).cast("long")
        )
        installed = F.when(F.col("first_slot") > 0, self.stamp(F.col("first_slot"))).otherwise(
            long_ago
        )
        removed = F.when(F.col("last_slot") < self.slots, self.stamp(F.col("last_slot"))).when(
            F.col("case") == "UNINSTALLED_CONSUMPTION", self.stamp(F.col("event_slot"))
        )
        return devices.select(
            F.concat(F.lit("IE-"), "device_id").alias("install_event_id"),
            "device_id",
            "service_point_id",
            installed.alias("installed_at"),
            removed.alias("removed_at"),
            "customer_class",
            "has_generation",
        )

    def device_table(self, devices: DataFrame) -> DataFrame:
        makers = F.array(*[F.lit(m) for m in MANUFACTURERS])
        maker = F.element_at(
            makers, (F.floor(self.u("maker", "device_id") * len(MANUFACTURERS)) + 1).cast("int")
        )
        return devices.select(
            "device_id",
            F.concat(
                F.lit("SN"), F.abs(F.xxhash64(F.lit(self.s.seed), "device_id")).cast("string")
            ).alias("serial_number"),
            F.lit("ELECTRIC_METER").alias("device_type"),
            maker.alias("manufacturer"),
            F.concat(F.lit("EM-"), F.col("customer_class").substr(1, 1), F.lit("3")).alias("model"),
        )

    def component_table(self, components: DataFrame) -> DataFrame:
        cumulative = F.col("component_reading_type") == "CUMULATIVE"
        return components.select(
            "measuring_component_id",
            "device_id",
            "component_type",
            F.col("component_reading_type").alias("reading_type"),
            F.col("interval_minutes").cast("int").alias("interval_minutes"),
            F.when(cumulative & (F.col("component_type") != TAMPER_COUNT), F.col("register_max"))
            .cast("double")
            .alias("register_max"),
        )

    def ground_truth(self, devices: DataFrame) -> DataFrame:
        """One row per device: its site, case, honest event and the planted parameters."""
        case = F.col("case")
        params = F.to_json(
            F.struct(
                F.when((case == "h1") | F.col("partial_theft"), F.col("alpha")).alias("alpha"),
                F.when(
                    case.isin(
                        "UNINSTALLED_CONSUMPTION",
                        "REGISTER_ROLLBACK",
                        "REVERSE_FLOW",
                        "TAMPER_EVENTS",
                    ),
                    self.stamp(F.col("event_slot")),
                ).alias("event_at"),
                F.when(case == "ZERO_CONSUMPTION", F.col("zero_days")).alias("zero_days"),
                F.when(case == "REVERSE_FLOW", F.col("reverse_share")).alias("reverse_share"),
                F.when(case == "REGISTER_ROLLBACK", F.col("rollback_days")).alias("rollback_days"),
                F.when(case == "TAMPER_EVENTS", F.col("tamper_events")).alias("tamper_events"),
            )
        )
        return devices.select(
            "device_id",
            "service_point_id",
            "customer_class",
            "has_generation",
            "reading_type",
            "electric_heating",
            "case",
            "honest_event",
            params.alias("parameters"),
        )

    def baseline_reverse_correlation(self, components: DataFrame) -> DataFrame:
        """For the h6 sites: the Pearson correlation of the baseline's hourly profile (UTC
        hours, net import) with that profile reversed. Reversal changes the shape only where
        it is low (the quality bar's condition for h6)."""
        h6 = components.where((F.col("case") == "h6") & (F.col("component_type") == IMPORT_KWH))
        frame = self.interval_slots(h6, F.lit(0), F.lit(self.window_slot - 1), 2)
        hour = F.floor((F.col("slot") % SLOTS_PER_DAY) / (60 // SLOT_MINUTES))
        hourly = (
            self.with_load(frame)
            .groupBy("device_id", hour.alias("profile_hour"))
            .agg(F.avg("honest_import").alias("kwh"))
        )
        mirror = hourly.select(
            "device_id",
            (23 - F.col("profile_hour")).alias("profile_hour"),
            F.col("kwh").alias("mirrored_kwh"),
        )
        return (
            hourly.join(mirror, ["device_id", "profile_hour"])
            .groupBy("device_id")
            .agg(correlation("kwh", "mirrored_kwh").alias("baseline_reverse_correlation"))
        )

    def hidden_energy(self, components: DataFrame) -> DataFrame:
        """For the planted devices: the energy (kWh) their attack hid in W (``hidden_kwh``).
        Import the meter did not record (honest - metered, over W's slots), plus energy drawn
        after the recorded removal (nobody is billed for it) and energy wound off the
        register. Computed on the planted import registers only."""
        planted = components.where(
            F.col("case").isin(*CASES) & (F.col("component_type") == IMPORT_KWH)
        )
        amounts = self.interval_amounts(planted).join(
            planted.select("measuring_component_id", "device_id", "case", "event_slot"),
            "measuring_component_id",
        )
        in_w = F.col("slot") >= self.window_slot
        unrecorded = F.when(in_w, F.col("honest_import") - F.col("amount"))
        removed = F.when(
            in_w
            & (F.col("case") == "UNINSTALLED_CONSUMPTION")
            & (F.col("slot") >= F.col("event_slot")),
            F.col("amount"),
        )
        return amounts.groupBy("device_id").agg(
            (
                F.coalesce(F.sum(unrecorded), F.lit(0.0))
                + F.coalesce(F.sum(removed), F.lit(0.0))
                + F.coalesce(F.sum("rewound"), F.lit(0.0))
            ).alias("hidden_kwh")
        )


# --- writing --------------------------------------------------------------------------------


def write_table(frame: DataFrame, path: str, fmt: str, partition_by: str | None = None) -> None:
    """Write ``frame`` as the contract expects: CSV with a header (ISO instants) or Parquet."""
    writer = frame.write.mode("overwrite")
    if partition_by:
        writer = writer.partitionBy(partition_by)
    if fmt == "csv":
        writer.option("header", True).option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ssXXX").csv(
            path
        )
    else:
        writer.parquet(path)


def generate(
    spark: SparkSession,
    settings: GeneratorSettings,
    window: RunWindow,
    on_step: Callable[[str], None] = lambda step: None,
) -> dict[str, Any]:
    """Write the four tables, the ground truth and the settings under ``settings.output``;
    ``on_step`` hears the name of each table as its writing begins (the progress line)."""
    generator = Generator(spark, settings, window)
    out = settings.output.rstrip("/")
    Path(out).mkdir(parents=True, exist_ok=True)
    marker = Path(out) / COMPLETE_MARKER
    marker.unlink(missing_ok=True)
    devices = generator.devices(generator.sites()).cache()
    components = generator.components(devices).cache()
    small = {
        "device": generator.device_table(devices),
        "measuring_component": generator.component_table(components),
        "install_event": generator.install_events(devices),
    }
    for table, frame in small.items():
        on_step(table)
        columns = [c.name for c in TABLES[table]]
        write_table(frame.select(*columns).coalesce(1), f"{out}/{table}", settings.format)
    on_step("measurements")
    write_table(
        generator.measurements(components),
        f"{out}/measurements",
        settings.format,
        partition_by=MEASURED_DATE,
    )
    on_step(GROUND_TRUTH)
    truth = (
        generator.ground_truth(devices)
        .join(generator.baseline_reverse_correlation(components), "device_id", "left")
        .join(generator.hidden_energy(components), "device_id", "left")
    )
    truth.orderBy("device_id").coalesce(1).write.mode("overwrite").option("header", True).option(
        "escape", '"'
    ).csv(f"{out}/{GROUND_TRUTH}")
    description = {
        "settings": json.loads(json.dumps(asdict(settings), default=str)),
        "window": {
            "baseline_start": window.baseline_start_date.isoformat(),
            "window_start": window.window_start_date.isoformat(),
            "run_date": window.run_date.isoformat(),
        },
        "devices": devices.count(),
        "components": components.count(),
    }
    (Path(out) / SETTINGS_FILE).write_text(json.dumps(description, indent=2), encoding="utf-8")
    marker.write_text(datetime.now().isoformat(), encoding="utf-8")
    return description


# --- command line ---------------------------------------------------------------------------


def _shares(text: str) -> tuple[str, float]:
    name, _, share = text.partition("=")
    if not share:
        raise argparse.ArgumentTypeError(f"expected NAME=SHARE, got {text!r}")
    return name, float(share)


def parse_args(argv: list[str] | None = None) -> tuple[GeneratorSettings, str | None]:
    """The settings (defaults from :class:`GeneratorSettings`) and the job config's path."""
    defaults = GeneratorSettings()
    parser = argparse.ArgumentParser(description="Generate a realistic smart-meter dataset.")
    parser.add_argument(
        "--config", help="the job's config (window sizes); default: as the job finds it"
    )
    parser.add_argument("--devices", type=int, default=defaults.devices, help="number of sites")
    parser.add_argument("--run-date", type=date.fromisoformat, default=defaults.run_date)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--output", default=defaults.output)
    parser.add_argument("--format", choices=("parquet", "csv"), default=defaults.format)
    shares = (
        ("--case-share", "CASE=SHARE", "share of sites per planted case", CASES),
        ("--honest-share", "EVENT=SHARE", "share of honest sites", HONEST_EVENTS),
        (
            "--partial-share",
            "CASE=SHARE",
            "share of sites per partially stolen case",
            PARTIAL_CASES,
        ),
    )
    for flag, metavar, what, names in shares:
        parser.add_argument(
            flag,
            type=_shares,
            action="append",
            default=[],
            metavar=metavar,
            help=f"{what} ({', '.join(names)})",
        )
    args = parser.parse_args(argv)
    case_shares = {**defaults.case_shares, **dict(args.case_share)}
    partial_shares = {**defaults.partial_shares, **dict(args.partial_share)}
    honest_shares = {**defaults.honest_event_shares, **dict(args.honest_share)}
    for name in set(case_shares) - set(CASES):
        parser.error(f"unknown case {name}")
    for name in set(partial_shares) - set(PARTIAL_CASES):
        parser.error(f"unknown partial case {name}")
    for name in set(honest_shares) - set(HONEST_EVENTS):
        parser.error(f"unknown honest event {name}")
    if (
        sum(case_shares.values()) + sum(partial_shares.values()) > 1
        or sum(honest_shares.values()) > 1
    ):
        parser.error("shares add up to more than 1")
    known = {f.name for f in fields(GeneratorSettings)}
    chosen = {k: v for k, v in vars(args).items() if k in known}
    settings = GeneratorSettings(
        **chosen,
        case_shares=case_shares,
        partial_shares=partial_shares,
        honest_event_shares=honest_shares,
    )
    return settings, args.config


def main(argv: list[str] | None = None) -> int:
    """Generate one dataset; return the process exit code."""
    settings, config_path = parse_args(argv)
    spark, log, config = start_spark(app_name=APP_NAME, config_path=config_path)
    window = RunWindow.from_config(settings.run_date, config)
    with Progress(APP_NAME, spark) as progress:
        description = generate(spark, settings, window, progress.step)
    log.info(
        "generated %s devices, %s components under %s",
        description["devices"],
        description["components"],
        settings.output,
    )
    print(json.dumps(description["window"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
