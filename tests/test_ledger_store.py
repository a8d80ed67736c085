"""The readings' ledger kept between runs: a run that reuses stored days publishes exactly
what a run computing everything again publishes, and computes only what changed.

One randomized history over a small generated dataset (CSV, partitioned by day): consecutive
run dates, late files, a rewritten partition, changed and new install events, a removed
component, a changed usage setting, a partition holding another day's reading, a backfill
and a killed run. Every run after the first is made twice, into two output paths: reusing
the store, and with ``--full-refresh``; their published outputs must be equal, row for row,
and the store run's report must say which days and devices it computed.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from dependencies.config import bundled_defaults
from dependencies.publish import read_published
from dependencies.run_window import RunWindow
from jobs import datalake_job, ledger_store
from jobs.tools.generate_data import CASES, GeneratorSettings, generate

LAST_DATE = date(2026, 11, 15)
OVERRIDES = {"window_days": 2, "baseline_days": 3, "evidence_max_devices": 5, "history_days": 7}
SETTINGS = GeneratorSettings(
    devices=12,
    seed=13,
    format="csv",
    run_date=LAST_DATE,
    case_shares=dict.fromkeys(CASES, 0.05),
    interval_share=0.3,
)
# Every run starts after the last generated day: every day of it can be stored.
STARTED_AT = datetime(2026, 11, 16, 6, tzinfo=UTC)
TABLES = ("alerts", "findings", "rejects", "evidence")
REPORT_KEYS = ("counts", "findings_by_rule", "alerts", "component_types", "history")
SEED = 20261201


@pytest.fixture(scope="module")
def generated(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small dataset, measurements partitioned by day, for LAST_DATE's read range."""
    output = tmp_path_factory.mktemp("ledger_generated")
    config = {**bundled_defaults(), **OVERRIDES}
    generate(
        spark,
        GeneratorSettings(**{**SETTINGS.__dict__, "output": str(output)}),
        RunWindow.from_config(LAST_DATE, config),
    )
    return output


class Twins:
    """The same input run two ways: reusing the store, and computing everything again."""

    def __init__(self, spark: SparkSession, input_path: Path, directory: Path) -> None:
        self.spark, self.input_path, self.directory = spark, input_path, directory
        self.usage: dict[str, Any] = {"lookback_days": 1}

    def config(self, name: str) -> Path:
        path = self.directory / f"{name}.json"
        path.write_text(
            json.dumps(
                {
                    "input": {"path": str(self.input_path), "format": "csv"},
                    "output": {"path": str(self.directory / name)},
                    "spark": {"spark.sql.shuffle.partitions": "2"},
                    "usage": self.usage,
                    **OVERRIDES,
                }
            ),
            encoding="utf-8",
        )
        return path

    def run_stored(self, run_date: date, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        """Run ``run_date`` reusing the store only, and give the full runs the same history
        (a copy of what it published); return its ledger summary."""
        monkeypatch.setattr(datalake_job, "run_start_instant", lambda: STARTED_AT)
        argv = ["--config", str(self.config("stored")), "--run-date", run_date.isoformat()]
        assert datalake_job.main(argv) == datalake_job.EXIT_OK
        shutil.copytree(
            self.directory / "stored",
            self.directory / "full",
            ignore=shutil.ignore_patterns(ledger_store.STORE),
            dirs_exist_ok=True,
        )
        return self.report("stored", run_date)["ledger"]

    def report(self, name: str, run_date: date) -> dict[str, Any]:
        path = (
            self.directory / name / "reports" / f"run_date={run_date.isoformat()}" / "report.json"
        )
        return json.loads(path.read_text(encoding="utf-8"))

    def run(self, run_date: date, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        """Run ``run_date`` both ways; assert they publish the same; return the store run's
        ledger summary."""
        monkeypatch.setattr(datalake_job, "run_start_instant", lambda: STARTED_AT)
        day = run_date.isoformat()
        for name, extra in (("stored", []), ("full", ["--full-refresh"])):
            argv = ["--config", str(self.config(name)), "--run-date", day, *extra]
            assert datalake_job.main(argv) == datalake_job.EXIT_OK, name
        for table in TABLES:
            stored, full = (
                read_published(self.spark, str(self.directory / name), table, run_date)
                for name in ("stored", "full")
            )
            assert_df_equality(stored, full, ignore_row_order=True, ignore_nullable=True)
        reports = [self.report(name, run_date) for name in ("stored", "full")]
        for key in REPORT_KEYS:
            assert reports[0][key] == reports[1][key], key
        full = reports[1]["ledger"]
        assert full["reused_days"] == []
        assert full["computed"][0]["reason"] in (
            "--full-refresh",
            "a day partition holds readings of other days",
        )
        return reports[0]["ledger"]


def days_between(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    return rows[0], rows[1:]


def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Write a CSV file (a new one, or a rewrite: Hadoop's checksum of the old one goes)."""
    path.with_name(f".{path.name}.crc").unlink(missing_ok=True)
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([header, *rows])


def day_file(input_path: Path, day: str) -> Path:
    return min((input_path / "measurements" / f"measured_date={day}").glob("part-*.csv"))


def own_parts(ledger: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts a run computed for its own days (not the day after the run date, which
    every run reads for its first readings and never stores)."""
    return [part for part in ledger["computed"] if part["reason"] != ledger_store.AFTER_RUN_DATE]


def computed_days(ledger: dict[str, Any]) -> set[str]:
    """Every day a run computed (in any part)."""
    days: set[str] = set()
    for part in ledger["computed"]:
        first, _, last = part["days"].partition("..")
        days |= set(days_between(date.fromisoformat(first), date.fromisoformat(last or first)))
    return days


def test_a_history_of_runs_reusing_the_store_publishes_what_full_runs_publish(
    spark: SparkSession, generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(SEED)
    # GIVEN a copy of the dataset to change, and two output paths run alike
    input_path = tmp_path / "input"
    shutil.copytree(generated, input_path)
    twins = Twins(spark, input_path, tmp_path)
    partitions = sorted(
        day
        for day in (
            p.name.split("=", 1)[1] for p in (input_path / "measurements").glob("measured_date=*")
        )
        if day <= LAST_DATE.isoformat()
    )
    assert partitions[-1] == LAST_DATE.isoformat()
    stored_days = partitions[:-1]

    # WHEN the day before the last runs with an empty store THEN it computes every day
    ledger = twins.run_stored(LAST_DATE - timedelta(days=1), monkeypatch)
    assert ledger["reused_days"] == []
    assert computed_days(ledger) >= set(stored_days)

    # WHEN the next date runs THEN only its new day is computed
    ledger = twins.run(LAST_DATE, monkeypatch)
    assert ledger["reused_days"] == stored_days
    day_after = (LAST_DATE + timedelta(days=1)).isoformat()
    assert ledger["computed"] == [
        {"days": LAST_DATE.isoformat(), "components": "all", "reason": "not in the store"},
        {"days": day_after, "components": "all", "reason": ledger_store.AFTER_RUN_DATE},
    ]

    # WHEN a late file lands in an old day (a copy of a reading, a conflicting one, a new one)
    late_day = rng.choice(stored_days[1:-1])
    header, rows = read_rows(day_file(input_path, late_day))
    copied, conflicting = rng.sample(rows, 2)
    new_instant = [copied[0], copied[1][:14] + "07:30Z", copied[2]]  # hh:07:30: no reading has it
    late = [copied, [conflicting[0], conflicting[1], str(float(conflicting[2]) + 1.5)], new_instant]
    write_rows(day_file(input_path, late_day).with_name("part-late.csv"), header, late)
    # ... and another partition is rewritten without a tenth of its readings
    rewritten_day = rng.choice([d for d in stored_days if d != late_day])
    header, rows = read_rows(day_file(input_path, rewritten_day))
    write_rows(day_file(input_path, rewritten_day), header, [r for r in rows if rng.random() > 0.1])
    ledger = twins.run(LAST_DATE, monkeypatch)
    # THEN those days are computed again, for their changed files; the days after them only
    # for the components whose state they hand on changed
    files_changed = {
        "components": "all",
        "reason": "its input files changed (a late or rewritten file)",
    }
    whole = {
        day
        for part in own_parts(ledger)
        if part["components"] == "all"
        for day in computed_days({"computed": [part]})
    }
    assert whole == {late_day, rewritten_day}
    assert all(
        part == {"days": part["days"], **files_changed}
        or part["reason"] == "an earlier day changed their state"
        for part in own_parts(ledger)
    )

    # WHEN a device is removed on a day (its install event gains removed_at) and installed
    # again late on the last day
    installs_file = min((input_path / "install_event").glob("part-*.csv"))
    header, rows = read_rows(installs_file)
    column = {name: header.index(name) for name in header}
    open_rows = [r for r in rows if not r[column["removed_at"]]]
    removed = rng.choice(open_rows)
    removal_day = rng.choice(stored_days[2:])
    removed[column["removed_at"]] = f"{removal_day}T12:00:00Z"
    new = list(removed)
    new[column["install_event_id"]] = "IE-NEW"
    new[column["installed_at"]], new[column["removed_at"]] = f"{LAST_DATE}T23:00:00Z", ""
    write_rows(installs_file, header, [*rows, new])
    # ... and a component of another device is removed from the component table
    device = removed[column["device_id"]]
    components_file = min((input_path / "measuring_component").glob("part-*.csv"))
    header, rows = read_rows(components_file)
    gone = rng.choice(
        [
            r
            for r in rows
            if r[header.index("component_type")] == "IMPORT_KWH"
            and r[header.index("device_id")] != device
        ]
    )
    write_rows(components_file, header, [r for r in rows if r is not gone])
    ledger = twins.run(LAST_DATE, monkeypatch)
    # THEN only those are computed again: the device on the days its intervals reach the
    # removal, the component's readings (now unknown_component) on every day
    assert all(part["components"] != "all" for part in own_parts(ledger))
    assert all(
        part["reason"].startswith("their component or install rows changed")
        for part in own_parts(ledger)
    )
    by_day = {part["days"]: set(part["devices"]) for part in own_parts(ledger)}
    removal_days = set(days_between(date.fromisoformat(removal_day), LAST_DATE))
    assert by_day == {
        day: {gone[0]} | ({device} if day in removal_days else set()) for day in partitions
    }

    # WHEN a usage setting changes THEN every day is computed again
    twins.usage = {"lookback_days": 1, "gap_factor": 2.0}
    ledger = twins.run(LAST_DATE, monkeypatch)
    assert own_parts(ledger) == [
        {
            "days": f"{partitions[0]}..{LAST_DATE}",
            "components": "all",
            "reason": "the ledger's version or the usage settings changed",
        }
    ]

    # WHEN an earlier date is backfilled THEN its days come from the store
    ledger = twins.run(LAST_DATE - timedelta(days=2), monkeypatch)
    assert own_parts(ledger) == []
    assert ledger["reused_days"] == stored_days[:-1]

    # WHEN a run is killed while it updates the store (after its first manifest: two days
    # have late files, so it writes at least two)
    for late_day in (stored_days[0], stored_days[2]):
        header, rows = read_rows(day_file(input_path, late_day))
        write_rows(
            day_file(input_path, late_day).with_name("part-late-2.csv"), header, rng.sample(rows, 3)
        )
    write_manifest = ledger_store.Store._write_manifest
    written: list[str] = []

    def killed_after_one(store: ledger_store.Store, day: str, manifest: dict[str, Any]) -> None:
        if written:
            raise KeyboardInterrupt("killed")
        written.append(day)
        write_manifest(store, day, manifest)

    monkeypatch.setattr(ledger_store.Store, "_write_manifest", killed_after_one)
    monkeypatch.setattr(datalake_job, "run_start_instant", lambda: STARTED_AT)
    with pytest.raises(KeyboardInterrupt):
        datalake_job.main(
            ["--config", str(twins.config("stored")), "--run-date", LAST_DATE.isoformat()]
        )
    monkeypatch.setattr(ledger_store.Store, "_write_manifest", write_manifest)
    # THEN the next run still publishes what a full run publishes
    twins.run(LAST_DATE, monkeypatch)

    # WHEN a day partition holds a reading stamped on another day
    header, rows = read_rows(day_file(input_path, stored_days[3]))
    stray = list(rng.choice(rows))
    stray[1] = f"{stored_days[2]}T10:07:00Z"
    write_rows(day_file(input_path, stored_days[3]).with_name("part-stray.csv"), header, [stray])
    ledger = twins.run(LAST_DATE, monkeypatch)
    # THEN nothing is reused: the whole range is computed in one pass, as a full run does
    assert ledger == {
        "mode": "unstored",
        "reused_days": [],
        "computed": [
            {
                "days": f"{partitions[0]}..{day_after}",
                "components": "all",
                "reason": "a day partition holds readings of other days",
            }
        ],
    }


def test_a_sample_not_partitioned_by_day_is_computed_whole_and_not_stored(
    sample_published: Path,
) -> None:
    # GIVEN the sample's run (its measurements are one CSV, not day partitions)
    report = json.loads(
        next((sample_published / "reports").glob("run_date=*/report.json")).read_text()
    )
    # THEN its ledger was computed in one pass and nothing was stored
    assert report["ledger"]["mode"] == "unstored"
    assert report["ledger"]["computed"][0]["reason"] == "the input is not partitioned by day"
    assert not (sample_published / ledger_store.STORE).exists()
