"""The readings' ledger kept between runs: a run that reuses stored days has exactly the
ledger of a run computing everything again, and computes only what changed.

One randomized history over a small generated dataset (CSV, partitioned by day): consecutive
run dates, late files, a rewritten partition, changed and new install events, a removed
component, a backfill, a killed run and a partition holding another day's reading (what other
changes make a run compute, such as new usage settings, is planned without Spark:
``tests/test_ledger_plan.py``). Each time the store is updated as a run updates it, and the
ledger it gives must equal, row for row, the ledger computed from every reading (everything
a run publishes is computed from that ledger and the small tables); what it says it reused
and computed must name the days and devices that changed.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from pathlib import Path
from typing import Any

import pytest
from conftest import rounded, row_hashes
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dependencies.config import bundled_defaults
from dependencies.run_window import RunWindow
from jobs.inputs import extract, readings_inputs, validate_tables
from jobs.ledger import AFTER_RUN_DATE, STORE, Inputs, readings_ledger, unstored_ledger
from jobs.ledger.store import FORMER, STATES, LedgerTables
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


class Ledgers:
    """The store of one output path, updated for a run date as a run updates it, each time
    beside the ledger a run computing every reading gives."""

    def __init__(self, spark: SparkSession, input_path: Path, directory: Path) -> None:
        self.spark, self.input_path, self.directory = spark, input_path, directory
        self.usage: dict[str, Any] = {**bundled_defaults()["usage"], "lookback_days": 1}
        self.runs = 0

    def inputs(self, run_date: date) -> Inputs:
        """The inputs of a run of ``run_date``, read afresh (as a run's, never from the cache
        of an earlier one: the small tables are cached)."""
        self.spark.catalog.clearCache()
        config = {**bundled_defaults(), **OVERRIDES, "usage": self.usage}
        config["input"] = {"path": str(self.input_path), "format": "csv"}
        window = RunWindow.from_config(run_date, config)
        raw = extract(self.spark, config["input"], window)
        checked = validate_tables(raw, window)
        return readings_inputs(checked, self.usage, window, STARTED_AT)

    def update(self, run_date: date) -> dict[str, Any]:
        """Update the store for ``run_date``; assert its ledger and read count are what
        every reading gives; return what it reused and computed. What every reading gives
        is computed beside the update, in a thread of its own (the test runs alone on a
        machine of two cores, and each query is planned on one)."""
        inputs = self.inputs(run_date)
        self.runs += 1
        with ThreadPoolExecutor(1) as beside:
            expected = beside.submit(lambda: fingerprints(unstored_ledger(inputs), inputs.raw))
            found, read, outcome = readings_ledger(
                self.spark,
                inputs,
                str(self.directory / "output"),
                str(self.input_path),
                f"run-{self.runs}",
                False,
                str(self.directory / "work" / str(self.runs)),
            )
            if outcome.mode == "unstored":
                # ... computed from every reading by the very function the comparison would
                # use: nothing to compare, and its readings are counted with the run's others
                assert read is None
                return outcome.summary()
            (stored_print,) = fingerprints(found)
            expected_print, (_, raw_rows) = expected.result()
        assert stored_print == expected_print, "the store's ledger is not every reading's"
        assert read == raw_rows
        return outcome.summary()


def fingerprints(*frames: DataFrame) -> tuple[int, ...]:
    """Per frame, in one query: its fingerprint (:func:`conftest.fingerprint`) and its
    number of rows (two equal rows would cancel in the fingerprint)."""
    sums = [
        rounded(f).agg(F.struct(row_hashes(f), F.count("*")).alias(f"_{n}"))
        for n, f in enumerate(frames)
    ]
    return tuple(tuple(found) for found in reduce(DataFrame.crossJoin, sums).first())


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
    return [part for part in ledger["computed"] if part["reason"] != AFTER_RUN_DATE]


def computed_days(ledger: dict[str, Any]) -> set[str]:
    """Every day a run computed (in any part)."""
    days: set[str] = set()
    for part in ledger["computed"]:
        first, _, last = part["days"].partition("..")
        days |= set(days_between(date.fromisoformat(first), date.fromisoformat(last or first)))
    return days


def killed_at(table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the store's first commit to ``table`` kill the run."""
    commit = LedgerTables.commit

    def commit_or_die(tables: LedgerTables, name: str, *args: Any) -> None:
        if name == table:
            raise KeyboardInterrupt("killed")
        commit(tables, name, *args)

    monkeypatch.setattr(LedgerTables, "commit", commit_or_die)


# Its own time is held to a bound (120 s): it runs alone, after the suite's background runs.
@pytest.mark.alone
def test_a_history_of_runs_reusing_the_store_publishes_what_full_runs_publish(
    spark: SparkSession, generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(SEED)
    # GIVEN a copy of the dataset to change, and two output paths run alike
    input_path = tmp_path / "input"
    shutil.copytree(generated, input_path)
    ledgers = Ledgers(spark, input_path, tmp_path)
    partitions = sorted(
        day
        for day in (
            p.name.split("=", 1)[1] for p in (input_path / "measurements").glob("measured_date=*")
        )
        if day <= LAST_DATE.isoformat()
    )
    assert partitions[-1] == LAST_DATE.isoformat()
    stored_days = partitions[:-1]

    # WHEN the day before the last runs with an empty store (but for what the store held
    # in its former format) THEN it computes every day, and the former files are gone
    former = [tmp_path / "output" / STORE / name for name in FORMER]
    for directory in former:
        directory.mkdir(parents=True)
        (directory / "part.json").write_text("{}", encoding="utf-8")
    ledger = ledgers.update(LAST_DATE - timedelta(days=1))
    assert ledger["reused_days"] == []
    assert computed_days(ledger) >= set(stored_days)
    assert not any(directory.exists() for directory in former)

    # WHEN the next date runs THEN only its new day is computed
    ledger = ledgers.update(LAST_DATE)
    assert ledger["reused_days"] == stored_days
    day_after = (LAST_DATE + timedelta(days=1)).isoformat()
    assert ledger["computed"] == [
        {"days": LAST_DATE.isoformat(), "components": "all", "reason": "not in the store"},
        {"days": day_after, "components": "all", "reason": AFTER_RUN_DATE},
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
    ledger = ledgers.update(LAST_DATE)
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
    ledger = ledgers.update(LAST_DATE)
    # THEN only those are computed again, in one chain over the days from the first that
    # changed (the component's readings, now unknown_component, change on every day)
    parts = own_parts(ledger)
    assert [(part["days"], part["components"], set(part["devices"])) for part in parts] == [
        (f"{partitions[0]}..{partitions[-1]}", 2, {gone[0], device})
    ]
    assert parts[0]["reason"] == "their component or install rows changed"

    # WHEN an earlier date is backfilled THEN its days come from the store (and the day
    # after it, a stored day, is computed for that run alone)
    ledger = ledgers.update(LAST_DATE - timedelta(days=2))
    assert own_parts(ledger) == []
    assert ledger["reused_days"] == stored_days[:-1]

    # WHEN a run is killed while it updates the store (two days have late files): after its
    # rows' commit, before its states' (and so before it records its days)
    for late_day in (stored_days[0], stored_days[2]):
        header, rows = read_rows(day_file(input_path, late_day))
        write_rows(
            day_file(input_path, late_day).with_name("part-killed.csv"), header, rng.sample(rows, 3)
        )
    killed_at(STATES, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        ledgers.update(LAST_DATE)
    monkeypatch.undo()
    # THEN the next run computes those days again and gives what every reading gives
    ledger = ledgers.update(LAST_DATE)
    assert {stored_days[0], stored_days[2]} <= computed_days(ledger)

    # WHEN a day partition holds a reading stamped on another day
    header, rows = read_rows(day_file(input_path, stored_days[3]))
    stray = list(rng.choice(rows))
    stray[1] = f"{stored_days[2]}T10:07:00Z"
    write_rows(day_file(input_path, stored_days[3]).with_name("part-stray.csv"), header, [stray])
    ledger = ledgers.update(LAST_DATE)
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
    assert not (sample_published / STORE).exists()


def test_the_store_keeps_no_column_statistics(spark: SparkSession, tmp_path: Path) -> None:
    # GIVEN a new store WHEN a block of two days' states is committed, then one day again
    store = LedgerTables(spark, str(tmp_path), "run-1")
    states = spark.createDataFrame(
        [("2026-11-01", "C1", 1.0), ("2026-11-02", "C1", 2.0)],
        "partition string, measuring_component_id string, last_value double",
    )
    store.commit(STATES, states, ["2026-11-01", "2026-11-02"])
    store.commit(STATES, states, ["2026-11-02"])
    # THEN the table is made to collect none (it is read by day partition only), and no
    # file it holds carries any: each file's statistics are its row count alone
    table = tmp_path / STORE / STATES
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{table}`").first()
    assert detail["properties"] == {"delta.dataSkippingNumIndexedCols": "0"}
    added = [
        json.loads(action["add"]["stats"])
        for commit in sorted((table / "_delta_log").glob("*.json"))
        for action in map(json.loads, commit.read_text(encoding="utf-8").splitlines())
        if "add" in action
    ]
    assert added == [{"numRecords": 1}] * 3
    # ... and the days read back are what was committed
    assert sorted(store.read(STATES, ["2026-11-01", "2026-11-02"]).collect()) == sorted(
        states.collect()
    )
