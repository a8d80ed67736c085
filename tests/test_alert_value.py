"""Energy at stake, value, priority and rank of alerts, on tiny hand-made device summaries:
one device per case of ``alert_evidence.md``."""

from __future__ import annotations

from datetime import date

from chispa import assert_approx_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dependencies.config import bundled_defaults
from jobs.alerts import value as alert_value

CONFIG = bundled_defaults()
DEVICE_SCHEMA = (
    "device_id string, comparable boolean, baseline_mean_kwh double, window_mean_kwh double, "
    "window_days_with_data bigint, class_drift double, uninstalled_import_kwh double, "
    "rollback_kwh double, export_without_generation_kwh double"
)
ALERT_SCHEMA = (
    "device_id string, service_point_id string, customer_class string, score double, "
    "rules array<string>, window_start date, window_end date"
)
W_START, W_END = date(2026, 11, 2), date(2026, 11, 15)


def devices(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, DEVICE_SCHEMA)


def alerts(spark: SparkSession, rows: list[tuple[str, str | None, float]]) -> DataFrame:
    """Alerts of (device, class, score), as :func:`jobs.rules.score` makes them."""
    return spark.createDataFrame(
        [(d, f"SP-{d}", klass, score, ["RULE"], W_START, W_END) for d, klass, score in rows],
        ALERT_SCHEMA,
    )


def test_energy_at_stake_per_case(spark: SparkSession) -> None:
    # GIVEN one device per case (W has 14 days; the class-drift minimum is 1.0 kWh a day)
    summaries = devices(
        spark,
        [
            # drop: 12 days with data at 4.5 against an expected 10 x 0.9 = 9 -> 12 x 4.5 missing
            ("DROP", True, 10.0, 4.5, 12, 0.9, None, None, None),
            # more than expected: no drop
            ("MORE", True, 10.0, 11.0, 14, 1.0, None, None, None),
            # not comparable: no drop view; its uninstalled import is the estimate
            ("NOTCMP", False, 10.0, 2.0, 5, 1.0, 5.0, None, None),
            # baseline below the minimum: no drop view, no event: no estimate
            ("SMALL", True, 0.8, 0.1, 14, 1.0, None, None, None),
            # events only (W as expected): 1 uninstalled + 3 rolled back + 2 reversed
            ("EVENTS", True, 10.0, 10.0, 14, 1.0, 1.0, 3.0, 2.0),
            # both views: a drop of 14 x 5 = 70 and 8 kWh of events: the larger, not the sum
            ("BOTH", True, 10.0, 5.0, 14, 1.0, 8.0, None, None),
            # both views, the events larger: 10 x (10 - 9) = 10 against 25
            ("EVBIG", True, 10.0, 9.0, 10, 1.0, None, 25.0, None),
        ],
    )

    # WHEN the energy at stake is estimated
    estimated = alert_value.unbilled_kwh(summaries, CONFIG["peers"]["min_baseline_kwh"])

    # THEN each case has its hand-computed views and estimate
    expected = spark.createDataFrame(
        [
            ("BOTH", 10.0, 70.0, 8.0, 70.0),
            ("DROP", 9.0, 54.0, 0.0, 54.0),
            ("EVBIG", 10.0, 10.0, 25.0, 25.0),
            ("EVENTS", 10.0, 0.0, 6.0, 6.0),
            ("MORE", 10.0, 0.0, 0.0, 0.0),
            ("NOTCMP", None, None, 5.0, 5.0),
            ("SMALL", None, None, 0.0, 0.0),
        ],
        "device_id string, expected_daily_kwh double, drop_kwh double, event_kwh double, "
        "estimated_unbilled_kwh double",
    )
    assert_approx_df_equality(estimated.orderBy("device_id"), expected, 1e-9, ignore_nullable=True)


def test_value_and_priority_use_the_class_tariff(spark: SparkSession) -> None:
    # GIVEN 10 kWh at stake on each class's device, and on one without a class
    summaries = devices(
        spark,
        [(d, False, 0.0, 0.0, 0, 1.0, 10.0, None, None) for d in ("RES", "COM", "IND", "NONE")],
    )
    found = alerts(
        spark,
        [
            ("RES", "RESIDENTIAL", 0.5),
            ("COM", "COMMERCIAL", 0.8),
            ("IND", "INDUSTRIAL", 1.0),
            ("NONE", None, 0.6),
        ],
    )

    # WHEN valued
    valued = found.transform(alert_value.with_estimate(summaries, CONFIG["peers"])).transform(
        alert_value.with_value(CONFIG["tariffs"])
    )

    # THEN value = kWh x tariff (none: RESIDENTIAL's 0.30), priority = score x value
    expected = spark.createDataFrame(
        [
            ("COM", 10.0, 2.5, "EUR", 2.0),
            ("IND", 10.0, 1.5, "EUR", 1.5),
            ("NONE", 10.0, 3.0, "EUR", 1.8),
            ("RES", 10.0, 3.0, "EUR", 1.5),
        ],
        "device_id string, estimated_unbilled_kwh double, estimated_value double, currency string, "
        "priority double",
    )
    actual = valued.select(
        "device_id", "estimated_unbilled_kwh", "estimated_value", "currency", "priority"
    )
    assert_approx_df_equality(actual.orderBy("device_id"), expected, 1e-9, ignore_nullable=True)


def test_an_alert_without_summary_counts_zero_kwh(spark: SparkSession) -> None:
    # GIVEN an alert whose device has no summary row (no usage at all)
    found = alerts(spark, [("GHOST", "RESIDENTIAL", 0.9)])
    # WHEN estimated THEN the estimate is 0, never null
    estimated = found.transform(alert_value.with_estimate(devices(spark, []), CONFIG["peers"]))
    assert [r["estimated_unbilled_kwh"] for r in estimated.collect()] == [0.0]


def test_rank_orders_by_priority_then_score_then_device(spark: SparkSession) -> None:
    # GIVEN alerts with tied priorities (and a tie in priority and score)
    found = spark.createDataFrame(
        [
            ("B", 0.5, 5.0),
            ("C", 0.9, 5.0),
            ("A", 0.9, 5.0),
            ("E", 0.7, 0.0),
            ("D", 1.0, 0.0),
            ("F", 0.6, 7.0),
        ],
        "device_id string, score double, priority double",
    ).withColumn("window_end", F.lit(W_END))

    # WHEN ranked
    ranks = {r["device_id"]: r["rank"] for r in alert_value.ranked(found).collect()}

    # THEN 1..n without gaps: priority first, then score, then device id
    assert ranks == {"F": 1, "A": 2, "C": 3, "B": 4, "D": 5, "E": 6}
