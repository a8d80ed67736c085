"""What an alert is worth: the energy at stake in W, its value, the priority and the rank.

``estimated_unbilled_kwh`` is the larger of two views of W (never their sum): the *drop view*,
the import missing against the device's expected daily import (baseline mean x class drift,
only for a comparable device with a real baseline), and the *event view*, the energy the
event rules measured (uninstalled import, rollbacks, export without generation). The value
prices it with the tariff of the device's class; ``priority`` = score x value orders the
alerts into ``rank`` (1 = investigate first). Inputs are the per-device summaries of
:class:`jobs.rules.RuleInputs` (``devices``), never readings.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from dependencies.transforms import Transform

# The tariff of a device without a customer class.
DEFAULT_TARIFF_CLASS = "RESIDENTIAL"
# The event rules' per-device kWh in W, summed into the event view.
EVENT_KWH = ("uninstalled_import_kwh", "rollback_kwh", "export_without_generation_kwh")


def expected_daily_kwh(min_baseline_kwh: float) -> Column:
    """A device's expected daily import in W, baseline mean x class drift; null unless it is
    comparable and its baseline mean reaches ``min_baseline_kwh``."""
    known = F.col("comparable") & (F.col("baseline_mean_kwh") >= min_baseline_kwh)
    return F.when(known, F.col("baseline_mean_kwh") * F.col("class_drift"))


def unbilled_kwh(devices: DataFrame, min_baseline_kwh: float) -> DataFrame:
    """Per device: ``expected_daily_kwh``, the drop view ``drop_kwh`` (null when unknown),
    the event view ``event_kwh`` and ``estimated_unbilled_kwh`` = max of the two (an unknown
    drop view counts as 0)."""
    expected = expected_daily_kwh(min_baseline_kwh)
    days = F.col("window_days_with_data")
    # Sum of import over W's days with data = their mean x their number.
    missing = days * expected - F.coalesce(F.col("window_mean_kwh") * days, F.lit(0.0))
    drop = F.when(expected.isNotNull(), F.greatest(missing, F.lit(0.0)))  # greatest skips nulls
    events = sum((F.coalesce(F.col(name), F.lit(0.0)) for name in EVENT_KWH), F.lit(0.0))
    return devices.select(
        "device_id",
        expected.alias("expected_daily_kwh"),
        drop.alias("drop_kwh"),
        events.alias("event_kwh"),
    ).withColumn(
        "estimated_unbilled_kwh",
        F.greatest(F.coalesce(F.col("drop_kwh"), F.lit(0.0)), F.col("event_kwh")),
    )


def with_estimate(devices: DataFrame, peers: dict[str, Any]) -> Transform:
    """Alerts -> the same, with ``estimated_unbilled_kwh`` from the devices' summaries."""

    def transform(alerts: DataFrame) -> DataFrame:
        estimates = unbilled_kwh(devices, peers["min_baseline_kwh"]).select(
            "device_id", "estimated_unbilled_kwh"
        )
        return alerts.join(estimates, "device_id", "left").withColumn(
            "estimated_unbilled_kwh", F.coalesce(F.col("estimated_unbilled_kwh"), F.lit(0.0))
        )

    return transform


def with_value(tariffs: dict[str, Any]) -> Transform:
    """Alerts with an estimate -> ``estimated_value`` (kWh x the tariff of the device's class,
    RESIDENTIAL's when it has none), ``currency`` and ``priority`` = score x value."""

    def transform(alerts: DataFrame) -> DataFrame:
        per_class = tariffs["per_class"]
        prices = F.create_map(*[F.lit(v) for item in sorted(per_class.items()) for v in item])
        tariff = F.coalesce(
            F.try_element_at(
                prices, F.coalesce(F.col("customer_class"), F.lit(DEFAULT_TARIFF_CLASS))
            ),
            F.lit(float(per_class[DEFAULT_TARIFF_CLASS])),
        )
        value = F.col("estimated_unbilled_kwh") * tariff
        return alerts.withColumn("estimated_value", value).select(
            "*",
            F.lit(tariffs["currency"]).alias("currency"),
            (F.col("score") * F.col("estimated_value")).alias("priority"),
        )

    return transform


def ranked(alerts: DataFrame) -> DataFrame:
    """Alerts -> ``rank``: 1, 2, ... by priority descending, then score descending, then
    device id (dense and deterministic), among the alerts of the same window (the run date)."""
    order = Window.partitionBy("window_end").orderBy(
        F.desc("priority"), F.desc("score"), "device_id"
    )
    return alerts.withColumn("rank", F.row_number().over(order))
