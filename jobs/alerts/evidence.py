"""The evidence table: what an investigator looks at before sending a crew.

One row per (alerted device, day of B and W) for the ``evidence_max_devices`` highest-ranked
alerts: the day's import and export and whether it has data, the device's expected daily
import (what the drop rules compare against), its hourly profiles over W and B, and its
findings. Built from daily usage and the per-device summaries (small tables), never from
readings.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dependencies.run_window import RunWindow
from jobs import rules
from jobs.alerts.value import expected_daily_kwh

# The period of a day, as the evidence table names it.
PERIOD_NAMES = {rules.BASELINE: "baseline", rules.WINDOW: "window"}
DAY_COLUMNS = (
    "device_id",
    "rank",
    "day",
    "period",
    "import_kwh",
    "export_kwh",
    "has_data",
    "expected_daily_kwh",
)
# The device's columns, repeated on each of its rows.
DEVICE_COLUMNS = ("window_hourly_kwh", "baseline_hourly_kwh", "findings")
COLUMNS = (*DAY_COLUMNS, *DEVICE_COLUMNS)


def evidence_table(
    alerts: DataFrame,
    rule_inputs: rules.RuleInputs,
    findings: DataFrame,
    max_devices: int,
    min_baseline_kwh: float,
) -> DataFrame:
    """The evidence rows of the ``max_devices`` highest-ranked ``alerts`` (ranked alerts;
    the run's :class:`~jobs.rules.RuleInputs` and findings). Every day of B and W has a row;
    a day without usage has null import and export and ``has_data`` false."""
    top = alerts.where(F.col("rank") <= max_devices).select("device_id", "rank")
    window: RunWindow = rule_inputs.window
    days = F.sequence(F.lit(window.baseline_start_date), F.lit(window.run_date))
    grid = top.select("device_id", "rank", F.explode(days).alias("day"))
    daily = rule_inputs.daily.select("device_id", "day", "import_kwh", "export_kwh", "has_data")
    devices = rule_inputs.devices.select(
        "device_id",
        expected_daily_kwh(min_baseline_kwh).alias("expected_daily_kwh"),
        "window_hourly_kwh",
        "baseline_hourly_kwh",
    )
    fired = findings.groupBy("device_id").agg(
        F.array_sort(F.collect_list(F.struct("rule", "metric", "explained_by"))).alias("findings")
    )
    period = F.when(
        F.col("day") >= F.lit(window.window_start_date), PERIOD_NAMES[rules.WINDOW]
    ).otherwise(PERIOD_NAMES[rules.BASELINE])
    return (
        grid.join(daily, ["device_id", "day"], "left")
        .join(devices, "device_id", "left")
        .join(fired, "device_id", "left")
        .withColumn("period", period)
        .withColumn("has_data", F.coalesce(F.col("has_data"), F.lit(False)))
        .select(*COLUMNS)
    )


def collect_rows(evidence: DataFrame) -> list[dict[str, Any]]:
    """The (bounded) evidence table as dicts, by rank and day, for the report page. Each
    device's own columns are collected once and shared by its rows: a 40th of the data."""
    per_device = {
        row["device_id"]: row.asDict(recursive=True)
        for row in evidence.dropDuplicates(["device_id"])
        .select("device_id", *DEVICE_COLUMNS)
        .collect()
    }
    days = sorted(
        evidence.select(*DAY_COLUMNS).collect(), key=lambda day: (day["rank"], day["day"])
    )  # ordered here: no Spark sort
    return [{**day.asDict(), **per_device[day["device_id"]]} for day in days]
