"""The benchmark's daily case and scaling reports, rendered from fixed figures (no Spark, no
timing)."""

from __future__ import annotations

import copy
import csv
import io
import json
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.tools.bench import figures_csv, main, render, results_dir
from jobs.tools.common import BENCH_DIR_VARIABLE
from jobs.tools.daily import (
    change_installs,
    daily_section,
    daily_targets,
    report_differences,
    restore_installs,
)
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
    fleet_ledger = {
        **daily_ledger,
        "computed": [
            {
                "days": "2026-11-06",
                "components": 12,
                "devices": ["M0000000", "M0002500", "M0005000", "M0007500"],
                "reason": "their component row or install periods changed",
            }
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
            "fleet": run(24.0),
            "fleet_full": run(120.0),
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
        "fleet_devices": ["M0000000", "M0002500", "M0005000", "M0007500"],
        "fleet": {"readings": 4_100_000, "components": 30000, "ledger": fleet_ledger, "stages": {}},
        "store_bytes": 30000 * 43 * 100,
        "same": {"identical": True, "day_readings": {"2026-11-15": 100_000, "2026-11-03": 100_000}},
        "same_late": {"identical": True, "day_readings": {"2026-11-03": 110_000}},
        "same_fleet": {"identical": True, "day_readings": {}},
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
        "| 24 | 120 | 0.20 (1/5.0) | yes, yes, yes | 123.0 |"
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
    # AND the fleet change's devices and what the ledger computed again for them
    assert any(
        "fleet change (4 devices removed)" in line
        and "2026-11-06 (12 components of M0000000, M0002500" in line
        for line in lines
    )


def test_daily_section_of_figures_without_a_fleet_change():
    # GIVEN a daily case measured before the benchmark changed the fleet
    older = daily_result()
    for key in ("fleet", "fleet_devices", "same_fleet"):
        del older[key]
    for run_name in ("fleet", "fleet_full"):
        del older["runs"][run_name]
    lines = daily_section([older])
    # THEN its fleet cells are blank and two comparisons are shown
    row = next(line for line in lines if line.startswith("| 10,000 |"))
    assert "| 0.25 (1/4.0) |  |  |  | yes, yes | 123.0 |" in row
    assert not any("devices removed" in line for line in lines)
    # AND its targets have no fleet row
    assert not any("install rows" in target for target, _, _ in daily_targets([older], (10000,)))


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
    assert rows[2] == (
        "daily run ≤ 1/5 of the full run at 30,000 devices",
        "30 s of 120 s: 0.25 (1/4.0)",
        "**no**",
    )
    # AND each size's run after the fleet change, 1/5 of its full run, meets its target
    assert rows[1] == (
        (
            "a run after 0.1% of the devices' install rows changed ≤ 1/4 of its full run at "
            "10,000 devices"
        ),
        "24 s of 120 s: 0.20 (1/5.0)",
        "yes",
    )
    assert rows[4][1:] == ("1 of 2 sizes (10,000, 30,000 devices)", "**no**")


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


def size_result() -> dict[str, Any]:
    """1,000 devices: a job of 40 s (30 s usage, 10 s detect; 110 Spark jobs), its floor 20 s."""
    return {
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


def test_benchmark_report_names_the_spark_jobs_of_each_stage():
    # GIVEN a size whose run report counted the Spark jobs of its stages
    # WHEN rendered THEN their sum and each stage's are there
    text = render([size_result()], MACHINE, [])
    assert '- 1,000 devices: 110 in all, `{"usage": 70, "detect": 40}`' in text


def test_figures_as_csv_a_row_per_run():
    # GIVEN a size and a daily case
    # WHEN their figures are written as CSV
    rows = list(csv.DictReader(io.StringIO(figures_csv([size_result()], [daily_result()]))))
    # THEN a row per process run: the size's job and floor, the daily case's seven runs
    assert [(r["case"], r["run"]) for r in rows] == [("size", "job"), ("size", "floor")] + [
        ("daily", run_name) for run_name in daily_result()["runs"]
    ]
    by_run = {(r["case"], r["run"]): r for r in rows}
    job, floor = by_run["size", "job"], by_run["size", "floor"]
    # AND the job against its floor, with its readings, Spark jobs, memory and stages
    assert (job["versus"], job["ratio"], job["readings"], job["spark_jobs"]) == (
        "floor",
        "2.000",
        "4000000",
        "110",
    )
    assert (job["jvm_peak_gib"], job["stage_usage_s"], job["stage_detect_s"]) == (
        "1.00",
        "30.0",
        "10.0",
    )
    assert (floor["versus"], floor["ratio"], floor["stage_usage_s"]) == ("", "", "")
    # AND each incremental run against its full run; the full runs stand alone
    daily, late = by_run["daily", "daily"], by_run["daily", "late"]
    assert (daily["versus"], daily["ratio"], daily["spark_jobs"]) == ("full", "0.167", "100")
    assert (daily["stage_usage_s"], daily["stage_publish_s"]) == ("5.0", "2.0")
    assert (late["versus"], late["ratio"], late["seconds"]) == ("late_full", "0.250", "30.0")
    assert by_run["daily", "fleet"]["ratio"] == "0.200"
    assert (by_run["daily", "full"]["versus"], by_run["daily", "previous"]["ratio"]) == ("", "")


def test_bench_prints_the_stored_figures_as_csv(tmp_path, monkeypatch, capsys):
    # GIVEN the stored figures of a size and of a daily case
    monkeypatch.setenv(BENCH_DIR_VARIABLE, str(tmp_path / "bench"))
    results_dir().mkdir(parents=True)
    (results_dir() / "devices1000.json").write_text(json.dumps(size_result()))
    (results_dir() / "daily10000.json").write_text(json.dumps(daily_result()))
    # WHEN the reports are rendered with --format csv
    code = main(
        [
            "--render",
            "--format",
            "csv",
            "--report",
            str(tmp_path / "benchmark.md"),
            "--scaling-report",
            str(tmp_path / "scaling.md"),
        ]
    )
    # THEN stdout is the CSV of every stored run, the messages are on stderr
    out, err = capsys.readouterr()
    assert code == 0
    assert out == figures_csv([size_result()], [daily_result()])
    assert out.startswith("case,devices,run,exit_code,seconds,versus,ratio,")
    assert f"wrote {tmp_path / 'benchmark.md'}" in err
    # AND the Markdown reports are written as without it
    assert "| 1,000 | 4,000,000 |" in (tmp_path / "benchmark.md").read_text()


def test_fleet_change_rewrites_the_install_table_and_puts_it_back(tmp_path):
    # GIVEN an install table of ten installed devices, one removed and one installed late
    data, aside = tmp_path / "data", tmp_path / "aside"
    (data / "install_event").mkdir(parents=True)
    removal = datetime(2026, 11, 6, 6)
    devices = [f"M{n:02d}" for n in range(12)]
    original = pa.table(
        {
            "device_id": devices,
            "installed_at": [datetime(2025, 1, 1)] * 11 + [datetime(2026, 11, 10)],
            "removed_at": [None] * 10 + [datetime(2026, 1, 1), None],
        },
        schema=pa.schema(
            [
                ("device_id", pa.string()),
                *[(c, pa.timestamp("ns")) for c in ("installed_at", "removed_at")],
            ]
        ),
    )
    source = data / "install_event" / "part-00000.parquet"
    pq.write_table(original, source)
    before = source.read_bytes()
    # WHEN a fifth of the installed devices are removed
    changed = change_installs(data, aside, removal, 0.2)
    # THEN two of the ten still installed before the removal are, every fifth by id
    assert changed == ["M00", "M05"]
    table = pq.read_table(data / "install_event")
    removed = dict(
        zip(table["device_id"].to_pylist(), table["removed_at"].to_pylist(), strict=True)
    )
    assert {d for d, at in removed.items() if at == removal} == {"M00", "M05"}
    assert removed["M10"] == datetime(2026, 1, 1)
    assert removed["M11"] is None
    # AND the original file waits aside until it is put back, unchanged
    assert not source.exists()
    assert restore_installs(data, aside)
    assert source.read_bytes() == before
    assert [f.name for f in (data / "install_event").iterdir()] == ["part-00000.parquet"]
    assert not restore_installs(data, aside)
