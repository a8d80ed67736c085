"""The benchmark's daily case and scaling reports, rendered from fixed figures (no Spark, no
timing)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jobs.tools.bench import render
from jobs.tools.daily import daily_section, daily_targets, report_differences
from jobs.tools.scaling import cost_model, days_in, project, render_scaling

MACHINE = {
    "generated_at": "2026-12-01 03:00 UTC",
    "cores": 2,
    "memory_gib": 23.5,
    "system": "Linux x86_64",
    "load_average": "1.0, 1.0, 1.0",
    "spark_settings": {},
}
READ_RANGE = [f"2026-10-{day:02d}" for day in range(4, 32)] + [
    f"2026-11-{day:02d}" for day in range(1, 15)
]


def run(seconds: float) -> dict[str, Any]:
    return {
        "exit_code": 0,
        "seconds": seconds,
        "driver_peak_rss": 0,
        "jvm_peak_rss": 0,
        "output_tail": "",
    }


def daily_result(daily_seconds: float = 20.0) -> dict[str, Any]:
    """10,000 devices, 3 components each; 100,000 new readings of 4,100,000 read; the daily
    run's stages take 15 s, the full run's 115 s, 5 s outside them; 100 bytes stored per
    component-day over 43 days."""
    full_ledger = {
        "mode": "incremental",
        "reused_days": [],
        "computed": [
            {"days": "2026-10-04..2026-11-15", "components": "all", "reason": "--full-refresh"}
        ],
    }
    daily_ledger = {
        "mode": "incremental",
        "reused_days": READ_RANGE,
        "computed": [{"days": "2026-11-15", "components": "all", "reason": "not in the store"}],
    }
    late_ledger = {
        **daily_ledger,
        "computed": [
            {"days": "2026-11-03", "components": "all", "reason": "its files changed"},
            {
                "days": "2026-11-04",
                "components": 40,
                "reason": "an earlier day changed their state",
            },
        ],
    }
    return {
        "devices": 10000,
        "run_date": "2026-11-15",
        "late_day": "2026-11-03",
        "cores": 2,
        "measured_at": "2026-12-01 02:50 UTC",
        "commit": "abc1234",
        "load_average": "0.5, 0.5, 0.5",
        "runs": {
            "previous": run(120.0),
            "daily": run(daily_seconds),
            "full": run(120.0),
            "late": run(30.0),
            "late_full": run(120.0),
        },
        "daily": {
            "readings": 4_100_000,
            "components": 30000,
            "ledger": daily_ledger,
            "stages": {"usage": daily_seconds - 15.0, "detect": 8.0, "publish": 2.0},
            "spark_jobs": {"usage": 60, "detect": 30, "publish": 10},
        },
        "full": {
            "readings": 4_100_000,
            "components": 30000,
            "ledger": full_ledger,
            "stages": {"usage": 100.0, "detect": 13.0, "publish": 2.0},
        },
        "late": {"readings": 4_100_000, "components": 30000, "ledger": late_ledger, "stages": {}},
        "store_bytes": 30000 * 43 * 100,
        "same": {"identical": True, "day_readings": {"2026-11-15": 100_000, "2026-11-03": 100_000}},
        "same_late": {"identical": True, "day_readings": {"2026-11-03": 110_000}},
    }


def test_days_in_a_ledger_part():
    # GIVEN a span of days and a single day  WHEN counted  THEN inclusive of both ends
    assert days_in("2026-10-04..2026-11-15") == 43
    assert days_in("2026-11-15") == 1
    assert days_in("") == 0


def test_cost_model_from_fixed_figures():
    # GIVEN a daily case whose full run's stages take 100 s more for 4,000,000 more readings
    model = cost_model(daily_result(), cores=2)
    # THEN a reading costs 25 µs, and the rest of the daily run's 15 s is 1.25 ms per device
    assert model.per_reading_seconds == pytest.approx(2.5e-5)
    assert model.per_device_seconds == pytest.approx(1.25e-3)
    assert model.outside_seconds == pytest.approx(5.0)
    assert model.days_read == 43
    assert model.components_per_device == pytest.approx(3.0)
    assert model.readings_per_device_day == pytest.approx(10.0)
    assert model.store_bytes_per_component_day == pytest.approx(100.0)


def test_projection_to_a_fleet_at_15_and_5_minutes():
    # GIVEN the fixed figures' costs
    model = cost_model(daily_result(), cores=2)
    # WHEN projected to a million meters
    at_15, at_5 = project(model, 1_000_000, 15), project(model, 1_000_000, 5)
    # THEN readings triple at 5 minutes, the ledger and the store do not
    assert at_15.readings_per_day == pytest.approx(10_000_000)
    assert at_5.readings_per_day == pytest.approx(30_000_000)
    assert at_15.full_readings == pytest.approx(430_000_000)
    assert at_5.ledger_rows == at_15.ledger_rows == pytest.approx(129_000_000)
    assert at_5.store_bytes == pytest.approx(12_900_000_000)
    # AND the work is 2 cores × (25 µs × readings + 1.25 ms × meters)
    assert at_15.daily_core_seconds == pytest.approx(2 * (250 + 1250))
    assert at_5.daily_core_seconds == pytest.approx(2 * (750 + 1250))
    assert at_15.full_core_seconds == pytest.approx(2 * (10750 + 1250))
    assert at_15.wall_seconds("daily", 64) == pytest.approx(5 + 3000 / 64)
    assert at_15.cores_within("full", 4) == 2  # 24,000 core-seconds within 14,395 s
    assert at_15.cores_within("daily", 1) == 1


def test_daily_section_has_a_row_per_size():
    # GIVEN a daily run of 20 s against a full run of 120 s, identical outputs
    lines = daily_section([daily_result()])
    # THEN the row shows the readings, the times, the shares and the comparison
    row = next(line for line in lines if line.startswith("| 10,000 |"))
    assert row.startswith(
        "| 10,000 | 4,100,000 | 100,000 | 120 | 20 | 0.17 (1/6.0) | 30 | 120 | 0.25 (1/4.0) "
        "| yes, yes | 123.0 |"
    )
    # AND the daily run's stages with the time outside them and their Spark jobs, and the
    # late file's ledger parts
    assert any(
        '"outside": 5.0' in line
        and "100 Spark jobs in its stages" in line
        and "42 days reused" in line
        for line in lines
    )
    assert any(
        "2026-11-04 (40 components: an earlier day changed their state)" in line for line in lines
    )


def test_daily_section_names_a_failed_run():
    # GIVEN a daily case whose daily run failed
    failed = daily_result()
    failed["runs"]["daily"]["exit_code"] = 1
    del failed["same"]
    # THEN its row says so
    assert any("daily run failed (exit 1)" in line for line in daily_section([failed]))


def test_daily_targets():
    # GIVEN a daily run of 1/6 of the full run, and one of 1/4 with a late file not identical
    slow = daily_result(daily_seconds=30.0)
    slow["devices"] = 30000
    slow["same_late"]["identical"] = False
    rows = daily_targets([daily_result(), slow], (10000, 30000))
    # THEN the first meets the target, the second does not, nor does "identical"
    assert rows[0] == (
        "daily run ≤ 1/5 of the full run at 10,000 devices",
        "20 s of 120 s: 0.17 (1/6.0)",
        "yes",
    )
    assert rows[1] == (
        "daily run ≤ 1/5 of the full run at 30,000 devices",
        "30 s of 120 s: 0.25 (1/4.0)",
        "**no**",
    )
    assert rows[2][1:] == ("1 of 2 sizes (10,000, 30,000 devices)", "**no**")


def test_benchmark_report_with_only_the_daily_case():
    # GIVEN no size measured but the daily case  WHEN rendered  THEN the daily section and
    # targets are there
    text = render([], MACHINE, [daily_result()])
    assert "## The daily run" in text
    assert (
        "| daily run ≤ 1/5 of the full run at 10,000 devices | 20 s of 120 s: 0.17 (1/6.0) | yes |"
        in text
    )


def test_report_differences():
    # GIVEN two reports that differ in their history and their durations only
    left = {
        "counts": {"device": 1},
        "findings_by_rule": {},
        "alerts": 3,
        "history": {"new": 1},
        "durations_seconds": {"detect": 1.0},
    }
    right = {**copy.deepcopy(left), "history": {"new": 2}, "durations_seconds": {"detect": 2.0}}
    # THEN only the history is a difference
    assert report_differences(left, right) == ["history"]


def test_scaling_report():
    # GIVEN the fixed figures  WHEN rendered
    text = render_scaling([daily_result()], MACHINE, "make bench")
    # THEN it names its command, says it is an extrapolation, and projects both fleets at both
    # cadences
    assert "Generated by `make bench` (2026-12-01 03:00 UTC)" in text
    assert "linear extrapolation" in text
    assert (
        "| 1.0 million | 15 min | 10.0 million | 430.0 million | 0.8 | 6.7 | 52 s | 6 min | 1 | 2 |"
        in text
    )
    assert "| 10.0 million | 5 min | 300.0 million |" in text


def test_scaling_report_without_figures():
    # GIVEN no daily case measured  THEN the report says how to measure one
    assert "python -m jobs.tools.bench --daily" in render_scaling([], MACHINE, "make bench")


def test_scaling_report_warns_when_no_cost_per_reading_separates():
    # GIVEN a full run whose stages took no longer than the daily run's
    result = daily_result()
    result["full"]["stages"] = {"usage": 10.0}
    # THEN the projections come with a warning
    assert "No cost per reading could be separated" in render_scaling(
        [result], MACHINE, "make bench"
    )
    assert "No cost per reading could be separated" not in render_scaling(
        [daily_result()], MACHINE, "make bench"
    )


def test_benchmark_report_names_the_spark_jobs_of_each_stage():
    # GIVEN a size whose run report counted the Spark jobs of its stages
    size = {
        "devices": 1000,
        "input_bytes": 2**20,
        "readings": 4_000_000,
        "job": {**run(40.0), "driver_peak_rss": 2**30, "jvm_peak_rss": 2**30},
        "floor": {**run(20.0), "jvm_peak_rss": 2**30},
        "measured_at": "2026-12-01 02:50 UTC",
        "commit": "abc1234",
        "load_average": "0.5, 0.5, 0.5",
        "job_stages": {"usage": 30.0, "detect": 10.0},
        "spark_jobs": {"usage": 70, "detect": 40},
    }
    # WHEN rendered THEN their sum and each stage's are there
    text = render([size], MACHINE, [])
    assert '- 1,000 devices: 110 in all, `{"usage": 70, "detect": 40}`' in text
