"""make quality's figures (energy at stake, precision at a realistic prevalence, what each
confounder does), on hand-made ground truth and alerts (no Spark)."""

from __future__ import annotations

import argparse

import pytest

from jobs.tools.quality import (
    Device,
    Hidden,
    _population,
    confounder_rows,
    estimate_summary,
    realistic_precision,
)


def test_median_error_per_case_and_value_held_by_the_top_alerts() -> None:
    # GIVEN planted devices with the energy their attack hid, and the alerts' estimates
    hidden = {
        "A": Hidden("h1", "RESIDENTIAL", 100.0),  # estimated 80: -20 %
        "B": Hidden("h1", "RESIDENTIAL", 100.0),  # estimated 150: +50 %
        "C": Hidden("h1", "RESIDENTIAL", 100.0),  # estimated 110: +10 %
        "D": Hidden("REVERSE_FLOW", "COMMERCIAL", 400.0),  # estimated exactly; worth 100
        "E": Hidden("h5", "RESIDENTIAL", 0.0),  # timing only: no error counted
        "F": Hidden("h2", "INDUSTRIAL", 200.0),  # not alerted; worth 30
    }
    alerts = [  # by rank
        {
            "device_id": "D",
            "score": 0.8,
            "rank": 1,
            "estimated_unbilled_kwh": 400.0,
            "estimated_value": 100.0,
        },
        {
            "device_id": "B",
            "score": 0.6,
            "rank": 2,
            "estimated_unbilled_kwh": 150.0,
            "estimated_value": 45.0,
        },
        {
            "device_id": "C",
            "score": 0.7,
            "rank": 3,
            "estimated_unbilled_kwh": 110.0,
            "estimated_value": 33.0,
        },
        {
            "device_id": "A",
            "score": 0.9,
            "rank": 4,
            "estimated_unbilled_kwh": 80.0,
            "estimated_value": 24.0,
        },
        {
            "device_id": "E",
            "score": 0.75,
            "rank": 5,
            "estimated_unbilled_kwh": 0.0,
            "estimated_value": 0.0,
        },
        {
            "device_id": "HONEST",
            "score": 0.95,
            "rank": 6,
            "estimated_unbilled_kwh": 1.0,
            "estimated_value": 0.3,
        },
    ]
    # WHEN summarised, for the top 1 and top 3 alerts
    summary = estimate_summary(hidden, alerts, tops=(1, 3))
    # THEN h1's median error is +10 % (of -20, +10, +50), REVERSE_FLOW's 0; h5 is not counted
    assert [(c["case"], c["alerted"], c["median_error"], c["met"]) for c in summary["cases"]] == [
        ("h1", 3, pytest.approx(0.10), True),
        ("REVERSE_FLOW", 1, 0.0, True),
    ]
    # AND of the planted value 3 x 30 + 100 + 30 = 220, the first alert by rank holds 100, the
    # first three 160; by score, the first is the honest device (0), the first three (with A
    # and D) 130
    assert summary["planted_value"] == pytest.approx(220.0)
    assert [(c["top"], c["by_rank"], c["by_score"]) for c in summary["capture"]] == [
        (1, pytest.approx(100 / 220), 0.0),
        (3, pytest.approx(160 / 220), pytest.approx(130 / 220)),
    ]


def test_precision_at_a_realistic_prevalence() -> None:
    # GIVEN a job that alerts 90 % of thieves and 0.1 % of honest meters
    # WHEN 1 % of meters are thieves THEN 0.009 / (0.009 + 0.00099) of its alerts are thieves
    assert realistic_precision(0.9, 0.001, 0.01) == pytest.approx(0.009 / 0.00999)
    # ... and with no alert at all, no precision
    assert realistic_precision(0.0, 0.0, 0.01) == 0.0


def device(device_id: str, case: str, alerted: bool = False) -> Device:
    return Device(
        device_id, case, "RESIDENTIAL", False, False, "INTERVAL", "none", {}, None, alerted, ()
    )


def test_each_confounder_counts_the_devices_it_kept_from_an_alert() -> None:
    # GIVEN findings (weight, explained by) of honest and planted devices, none alerted but A
    devices = [
        device("A", "h1", alerted=True),
        device("H1", "honest"),
        device("H2", "honest"),
        device("H3", "honest"),
        device("P1", "h3"),
    ]
    weighed = {
        "A": [(0.6, None), (0.5, "DROP_ENDED")],  # alerted anyway: kept from nothing
        "H1": [(0.6, "DROP_ENDED"), (0.4, "DROP_ENDED")],  # 0.76 without it
        "H2": [(0.4, "DROP_ENDED")],  # 0.4: would not alert either way
        "H3": [(0.4, None), (0.5, "BASE_LOAD_HELD")],  # 0.7 without it
        "P1": [(0.5, "BASE_LOAD_HELD"), (0.4, "DROP_ENDED")],  # 0.5 / 0.4: one of them
    }
    # WHEN each confounder's effect is counted at the alert threshold 0.5
    rows = confounder_rows(devices, weighed, 0.5, ["DROP_ENDED", "BASE_LOAD_HELD", "SPREAD_HELD"])
    # THEN each names the honest and planted devices that alert when it alone is left out
    assert rows == [
        {"confounder": "BASE_LOAD_HELD", "honest": 1, "planted": 1},
        {"confounder": "DROP_ENDED", "honest": 1, "planted": 0},
        {"confounder": "SPREAD_HELD", "honest": 0, "planted": 0},
    ]


def test_another_population_is_named_by_its_seed_and_run_date() -> None:
    # GIVEN --other's values WHEN parsed THEN a seed and an ISO run date, or a one-line error
    assert _population("31:2026-04-15") == (31, "2026-04-15")
    with pytest.raises(argparse.ArgumentTypeError, match="expected SEED:YYYY-MM-DD, got '31'"):
        _population("31")
    with pytest.raises(argparse.ArgumentTypeError, match="got 'x:2026-04-15'"):
        _population("x:2026-04-15")
