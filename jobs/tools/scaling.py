"""``docs/scaling.md``: the daily case's measured figures (:mod:`jobs.tools.daily`)
projected, linearly, to fleets of 1 and 10 million meters at 15- and 5-minute data.

The cost model, fitted on one measured size (a full run and a daily run of the same date):

- ``outside``: the seconds of a run outside the stages its report times (JVM start and stop,
  config, small tables): fixed;
- ``per_reading``: the seconds one more reading adds, from the two runs' timed stages: the
  full run reads every day, the daily run one, so ``(full − daily) / (readings read − new
  day's readings)``;
- ``per_device``: what remains of the daily run's timed stages once its new day's readings
  are paid, per device: reading the stored ledger and running the rules over devices × days of
  ledger rows; it grows with the fleet, not with the readings.

Seconds are wall-clock on the measured machine; core-seconds count every core as busy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

from jobs.tools.daily import measured as daily_case_measured

FLEETS = (1_000_000, 10_000_000)
CADENCES_MINUTES = (15, 5)
MEASURED_CADENCE_MINUTES = 15
CLUSTER_CORES = 64
DAILY_DEADLINE_HOURS = 1
FULL_DEADLINE_HOURS = 4
SECONDS_PER_HOUR = 3600


@dataclass(frozen=True)
class CostModel:
    """Per-unit costs measured at one size (see the module's docstring)."""

    devices: int
    cores: int
    components_per_device: float
    readings_per_device_day: float  # at the measured cadence
    days_read: int
    outside_seconds: float
    per_reading_seconds: float
    per_device_seconds: float
    store_bytes_per_component_day: float


@dataclass(frozen=True)
class Projection:
    """One fleet at one cadence: its readings, work (core-seconds) and what it stores."""

    meters: int
    cadence_minutes: int
    readings_per_day: float
    full_readings: float
    ledger_rows: float
    store_bytes: float
    daily_core_seconds: float
    full_core_seconds: float
    outside_seconds: float

    def wall_seconds(self, run: str, cores: int) -> float:
        """A run's (``daily``/``full``) time on ``cores`` cores, its work spread evenly."""
        work = self.daily_core_seconds if run == "daily" else self.full_core_seconds
        return self.outside_seconds + work / cores

    def cores_within(self, run: str, hours: float) -> int:
        """The cores a run needs to finish within ``hours``."""
        work = self.daily_core_seconds if run == "daily" else self.full_core_seconds
        return math.ceil(work / (hours * SECONDS_PER_HOUR - self.outside_seconds))


def days_computed(ledger: dict[str, Any]) -> int:
    """The days a run's ledger section says it computed for every component."""
    return sum(days_in(part["days"]) for part in ledger["computed"] if part["components"] == "all")


def days_in(span: str) -> int:
    """How many days a ledger part ``A..B`` (or one day ``A``) covers."""
    if not span:
        return 0
    first, _, last = span.partition("..")
    return (date.fromisoformat(last or first) - date.fromisoformat(first)).days + 1


def cost_model(result: dict[str, Any], cores: int) -> CostModel:
    """The per-unit costs of one measured daily case (figures as :func:`bench_daily` stores
    them) on a machine of ``cores`` cores."""
    runs, devices = result["runs"], result["devices"]
    new_day = result["same"]["day_readings"][result["run_date"]]
    read = result["full"]["readings"]
    full_stages, daily_stages = (
        sum(result["full"]["stages"].values()),
        sum(result["daily"]["stages"].values()),
    )
    per_reading = max(0.0, (full_stages - daily_stages) / (read - new_day))
    per_device = max(0.0, (daily_stages - per_reading * new_day) / devices)
    components = result["daily"]["components"]
    days_stored = len(result["daily"]["ledger"]["reused_days"]) + days_computed(
        result["daily"]["ledger"]
    )
    return CostModel(
        devices=devices,
        cores=cores,
        components_per_device=components / devices,
        readings_per_device_day=new_day / devices,
        days_read=days_computed(result["full"]["ledger"]),
        outside_seconds=runs["daily"]["seconds"] - daily_stages,
        per_reading_seconds=per_reading,
        per_device_seconds=per_device,
        store_bytes_per_component_day=result["store_bytes"] / (components * days_stored),
    )


def project(model: CostModel, meters: int, cadence_minutes: int) -> Projection:
    """The model's costs for ``meters`` meters sending readings every ``cadence_minutes``."""
    per_day = meters * model.readings_per_device_day * MEASURED_CADENCE_MINUTES / cadence_minutes
    ledger_rows = meters * model.components_per_device * model.days_read
    device_part = model.per_device_seconds * meters
    return Projection(
        meters=meters,
        cadence_minutes=cadence_minutes,
        readings_per_day=per_day,
        full_readings=per_day * model.days_read,
        ledger_rows=ledger_rows,
        store_bytes=ledger_rows * model.store_bytes_per_component_day,
        daily_core_seconds=model.cores * (model.per_reading_seconds * per_day + device_part),
        full_core_seconds=model.cores
        * (model.per_reading_seconds * per_day * model.days_read + device_part),
        outside_seconds=model.outside_seconds,
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * SECONDS_PER_HOUR:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / SECONDS_PER_HOUR:.1f} h"


def _count(value: float) -> str:
    for size, unit in ((1e9, "billion"), (1e6, "million")):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:,.0f}"


def _bytes(value: float) -> str:
    for size, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB")):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value / 2**10:.0f} KiB"


def model_rows(models: list[CostModel]) -> list[str]:
    """The measured per-unit costs, one row per size."""
    lines = [
        (
            "| devices | components per device | readings per device and day "
            "| days a full run reads | outside the stages (s) | per reading (µs) "
            "| per device (ms) | store per component-day (bytes) |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {m.devices:,} | {m.components_per_device:.2f} | {m.readings_per_device_day:.0f} | "
        f"{m.days_read} | "
        f"{m.outside_seconds:.1f} | {m.per_reading_seconds * 1e6:.2f} | "
        f"{m.per_device_seconds * 1e3:.2f} | "
        f"{m.store_bytes_per_component_day:.0f} |"
        for m in models
    ]
    return lines


def projection_rows(model: CostModel) -> list[str]:
    """The projections of ``model``, one row per fleet and cadence."""
    lines = [
        (
            "| meters | data every | readings per day | a full run reads | daily run (core-hours) "
            f"| full run (core-hours) | daily run on {CLUSTER_CORES} cores "
            f"| full run on {CLUSTER_CORES} cores "
            f"| cores for a daily run < {DAILY_DEADLINE_HOURS} h "
            f"| cores for a full run < {FULL_DEADLINE_HOURS} h "
            "| ledger rows | store |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for meters in FLEETS:
        for cadence in CADENCES_MINUTES:
            p = project(model, meters, cadence)
            lines.append(
                f"| {_count(meters)} | {cadence} min | {_count(p.readings_per_day)} | "
                f"{_count(p.full_readings)} | "
                f"{p.daily_core_seconds / SECONDS_PER_HOUR:,.1f} | "
                f"{p.full_core_seconds / SECONDS_PER_HOUR:,.1f} | "
                f"{_duration(p.wall_seconds('daily', CLUSTER_CORES))} | "
                f"{_duration(p.wall_seconds('full', CLUSTER_CORES))} | "
                f"{p.cores_within('daily', DAILY_DEADLINE_HOURS):,} | "
                f"{p.cores_within('full', FULL_DEADLINE_HOURS):,} | "
                f"{_count(p.ledger_rows)} | {_bytes(p.store_bytes)} |"
            )
    return lines


def render_scaling(daily: list[dict[str, Any]], machine: dict[str, Any], command: str) -> str:
    """``docs/scaling.md`` from the daily case's stored figures."""
    measured = [r for r in daily if daily_case_measured(r)]
    lines = [
        "# Scaling: from the benchmark to a fleet",
        "",
        f"Generated by `{command}` ({machine['generated_at']}) from the daily case's figures in",
        "[benchmark.md](benchmark.md); do not edit by hand.",
        "",
    ]
    if not measured:
        return "\n".join(
            [*lines, "No daily case measured yet: run `python -m jobs.tools.bench --daily`.", ""]
        )
    models = [cost_model(r, r.get("cores") or machine["cores"]) for r in measured]
    basis = models[-1]
    lines += [
        (
            "**This is a linear extrapolation** from runs on one machine of "
            f"{basis.cores} cores ({machine['memory_gib']:.1f} GiB, {machine['system']}), "
            "local Spark with the bundled settings, generated data of at most "
            f"{basis.devices:,} devices. Nothing here was run on a cluster."
        ),
        "",
        "## What was measured",
        "",
        (
            "Each size ran a full run (`--full-refresh`, every day of the read range) and a "
            "daily run (one new day, the rest of the readings' ledger reused) of the same date. "
            "From the two runs' stage times (the `durations_seconds` of their reports):"
        ),
        "",
        (
            "- *outside the stages*: the daily run's seconds outside its timed stages "
            "(JVM start and stop, config, the small tables): a fixed cost;"
        ),
        (
            "- *per reading*: (full run's stages − daily run's stages) / "
            "(readings the full run read − the new day's readings): what one more reading costs;"
        ),
        (
            "- *per device*: the daily run's stages less its new day's readings at that price, "
            "per device: reading the stored ledger and running the rules over devices × days "
            "of ledger rows;"
        ),
        (
            "- *store per component-day*: the size of `<output>/_ledger/` over components × "
            "stored days."
        ),
        "",
        *model_rows(models),
        "",
        (
            f"The projections use the largest size ({basis.devices:,} devices); the other rows "
            "show how far the per-unit costs move between sizes, a rough measure of how linear "
            "the job is."
        ),
        "",
        *(
            []
            if basis.per_reading_seconds > 0
            else [
                (
                    "**No cost per reading could be separated at this size**: the full run's "
                    "stages took no longer than the daily run's, so the projections below put all "
                    "of the work on the devices. Measure a larger size (or on a quieter machine) "
                    "before reading them."
                ),
                "",
            ]
        ),
        "## Projected to a fleet",
        "",
        (
            "A daily run's work is *per reading* × the new day's readings + *per device* × meters; "
            "a full run's is *per reading* × every reading of the read range + *per device* × "
            f"meters. Core-hours count all {basis.cores} measured cores as busy. Times on a "
            "cluster spread that work evenly over its cores and add the fixed *outside* seconds."
        ),
        "",
        *projection_rows(basis),
        "",
        "## What grows with the fleet, and what does not",
        "",
        (
            "- **Grows with the readings** (meters × readings per meter and day): the new day's "
            "readings a daily run reads (×3 at 5-minute data), and every reading of the "
            f"{basis.days_read} days a full run reads. A late file costs its day again, like a "
            "new day, plus the later days of the components it touched."
        ),
        (
            "- **Grows with the meters, not with the readings**: the ledger rows (a row per "
            f"component and day: about {basis.components_per_device:.1f} components × "
            f"{basis.days_read} days per "
            "meter), the store that keeps them, and the rules run over them each day: the same at "
            "5-minute data as at 15."
        ),
        (
            "- **Fixed**: the JVM's start, the config, the small tables at these sizes (devices, "
            "components, installs: they grow with the meters but stay far below the readings)."
        ),
        "",
        "## Assumptions",
        "",
        (
            "1. Linear costs: a reading and a device cost the same at any size, with no change of "
            "regime (spilling, skew, garbage collection, a driver limit) past the measured sizes."
        ),
        (
            "2. Perfect parallelism: the work spreads evenly over a cluster's cores, with "
            "`spark.sql.shuffle.partitions` raised to match; no cluster start, network shuffle or "
            "object-store limit is counted."
        ),
        (
            f"3. Core-seconds are wall seconds × {basis.cores} cores: every core busy. Parts of "
            "a run use one core, so the work is overstated there; the cluster's network is not "
            "counted."
        ),
        (
            "4. The fleet looks like the generated data: the same components per meter, the "
            "same share of gaps and rejects, and at 5-minute data three times the readings per "
            "component at the same cost per reading, with one ledger row per component and day "
            "as at 15."
        ),
        "5. A daily run reads exactly one new day; a run with late files reads more (see above).",
        "",
    ]
    return "\n".join(lines)
