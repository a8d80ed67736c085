"""The evidence table on tiny hand-made daily usage (the helpers of test_rules)."""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import SparkSession
from test_rules import B_DAYS, CONFIG, PROFILE, W_DAYS, meter, rule_inputs, scaled

from jobs.alerts.evidence import collect_rows, evidence_table


def test_evidence_rows_of_the_highest_ranked_alerts(spark: SparkSession) -> None:
    # GIVEN three alerted devices: A at half its baseline in W, B silent on W's 3rd day,
    # C ranked last; and A's findings, one of them explained by a confounder
    rows = (
        meter("A", window=scaled(0.5))
        + [r for r in meter("B") if r["day"] != W_DAYS[2]]
        + meter("C")
    )
    inputs = rule_inputs(spark, rows)
    alerts = spark.createDataFrame([("A", 2), ("B", 1), ("C", 3)], "device_id string, rank int")
    findings = spark.createDataFrame(
        [("A", "CONSUMPTION_DROP", 0.5, None), ("A", "SUSTAINED_DROP", 0.5, "BASE_LOAD_HELD")],
        "device_id string, rule string, metric double, explained_by string",
    )

    # WHEN the evidence of at most 2 devices is built
    table = evidence_table(alerts, inputs, findings, 2, CONFIG["peers"]["min_baseline_kwh"])
    got = {(r["device_id"], r["day"]): r for r in table.collect()}

    # THEN the two highest ranked have a row per day of B and W, C none
    assert sorted({d for d, _ in got}) == ["A", "B"]
    assert len(got) == 2 * (len(B_DAYS) + len(W_DAYS))
    first_w = got[("A", W_DAYS[0])]
    assert (first_w["rank"], first_w["period"], first_w["import_kwh"], first_w["has_data"]) == (
        2,
        "window",
        pytest.approx(5.0),
        True,
    )
    assert got[("A", B_DAYS[-1])]["period"] == "baseline"
    # A's expected level: baseline mean 10 x class drift 1 (a class too small for statistics)
    assert first_w["expected_daily_kwh"] == pytest.approx(10.0)
    assert first_w["window_hourly_kwh"] == pytest.approx(scaled(0.5))
    assert first_w["baseline_hourly_kwh"] == pytest.approx(PROFILE)
    assert [(f["rule"], f["metric"], f["explained_by"]) for f in first_w["findings"]] == [
        ("CONSUMPTION_DROP", 0.5, None),
        ("SUSTAINED_DROP", 0.5, "BASE_LOAD_HELD"),
    ]
    # B's silent day: a row without usage; B has no finding
    silent = got[("B", W_DAYS[2])]
    assert (silent["import_kwh"], silent["export_kwh"], silent["has_data"]) == (None, None, False)
    assert silent["findings"] is None
    assert silent["rank"] == 1
    assert got[("B", date(2026, 11, 15))]["has_data"] is True
    # AND collected for the report page, the rows are the table's, by rank and day
    assert collect_rows(table) == [
        r.asDict(recursive=True) for r in table.orderBy("rank", "day").collect()
    ]


def test_no_evidence_rows_when_the_limit_is_zero(spark: SparkSession) -> None:
    inputs = rule_inputs(spark, meter("A"))
    alerts = spark.createDataFrame([("A", 1)], "device_id string, rank int")
    findings = spark.createDataFrame(
        [], "device_id string, rule string, metric double, explained_by string"
    )
    assert evidence_table(alerts, inputs, findings, 0, 1.0).count() == 0
