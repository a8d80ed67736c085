"""Bad input is quarantined with a reason, every row is accounted for, and runs are idempotent
and atomic.

The dirty input is tests/test_data plus one extra part file per table holding every kind of
bad row; each row below carries the status it must get. Full job runs are few (a clean run,
which is the suite's run of the sample, a dirty run, a re-run and a failing run) and each is
checked many ways.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from conftest import RUN_DATE, TEST_DATA, write_job_config
from pyspark.sql import DataFrame, DataFrameWriter, SparkSession

from dependencies.config import load_config
from dependencies.publish import commit_table, read_published
from dependencies.run_window import RunWindow
from dependencies.tables import count_read
from jobs import datalake_job
from jobs.inputs import ValidatedTables, count_rows, extract, readings_inputs, validate_tables
from jobs.ledger import checked_readings

# The runs start at this instant: readings stamped later are meter clock errors.
RUN_STARTED_AT = datetime(2026, 11, 20, tzinfo=UTC)
BACKFILL_DATE = "2026-11-08"
OUTPUTS = ("alerts", "findings", "rejects")
# The reasons the data contract names; the dirty input must produce each of them.
CONTRACT_REASONS = {
    "missing_required",
    "bad_timestamp",
    "bad_number",
    "negative_value",
    "unknown_device",
    "unknown_component",
    "duplicate_key",
    "conflicting_duplicate",
    "overlapping_install",
    "removed_before_installed",
    "future_timestamp",
}
VOLTAGE_READINGS = [f"R01-VOLT,2026-11-05T{hour:02d}:00:00Z,230.0" for hour in range(1, 24)] + [
    "R01-VOLT,2026-11-06T00:00:00Z,230.0"
]

# Each extra row of the dirty input, and the status it must get.
DIRTY_ROWS: dict[str, list[tuple[str, str]]] = {
    "device": [
        (",SN-X,ELECTRIC_METER,Acme,AM-1", "missing_required"),
        ("X01,SN-X01,,Acme,AM-1", "missing_required"),
        ("X02,SN-X02,ELECTRIC_METER", "malformed_row"),
        ("DUP1,SN-A,ELECTRIC_METER,Acme,AM-1", "duplicate_key"),
        ("DUP1,SN-B,ELECTRIC_METER,Acme,AM-1", "duplicate_key"),
        ("R01,SN-R01,ELECTRIC_METER,Acme,AM-1", "deduplicated"),
        ("OLD1,SN-OLD1,ELECTRIC_METER,Acme,AM-1", "used"),
    ],
    "measuring_component": [
        ("X9-IMP,NOPE,IMPORT_KWH,CUMULATIVE,60,", "unknown_device"),
        ("DUP1-IMP,DUP1,IMPORT_KWH,CUMULATIVE,60,", "unknown_device"),  # its device is rejected
        ("XR-IMP,R01,IMPORT_KWH,MONTHLY,60,", "invalid_value"),
        ("XZ-IMP,R01,IMPORT_KWH,CUMULATIVE,0,", "invalid_value"),
        ("XB-IMP,R01,IMPORT_KWH,CUMULATIVE,60,-5", "invalid_value"),
        ("XN-IMP,R01,IMPORT_KWH,CUMULATIVE,sixty,", "bad_number"),
        ("XF-IMP,R01,IMPORT_KWH,CUMULATIVE,15.5,", "bad_number"),
        ("XM-IMP,R01,,CUMULATIVE,60,", "missing_required"),
        ("XX-IMP,R01,IMPORT_KWH,CUMULATIVE,60,,extra", "malformed_row"),
        ("DUPC-IMP,R01,IMPORT_KWH,CUMULATIVE,60,", "duplicate_key"),
        ("DUPC-IMP,R01,IMPORT_KWH,CUMULATIVE,30,", "duplicate_key"),
        ("R02-IMP,R02,IMPORT_KWH,CUMULATIVE,60,", "deduplicated"),
        ("R01-VOLT,R01,VOLTAGE,INTERVAL,60,", "used"),  # kept, ignored by detection
    ],
    "install_event": [
        (
            "IE-X1,R01,SP-X1,2026-05-01T00:00:00Z,2026-04-01T00:00:00Z,RESIDENTIAL,false",
            "removed_before_installed",
        ),
        (
            "IE-X9,R02,SP-X9,2026-03-01T00:00:00Z,2026-03-01T00:00:00Z,RESIDENTIAL,false",
            "removed_before_installed",
        ),
        ("IE-X2,R01,SP-X2,2026-06-01T00:00:00Z,,RESIDENTIAL,false", "overlapping_install"),
        # Overlaps IE-R23 and is rejected; IE-R23-2 overlaps only this one and stays used.
        (
            "IE-R23-X,R23,SP-R23-X,2026-10-01T00:00:00Z,2026-10-23T00:00:00Z,RESIDENTIAL,false",
            "overlapping_install",
        ),
        ("IE-X3,NOPE,SP-X3,2026-01-01T00:00:00Z,,RESIDENTIAL,false", "unknown_device"),
        ("IE-X4,R02,SP-X4,2026-01-01T00:00:00Z,,GOVERNMENT,false", "invalid_value"),
        ("IE-X5,R02,SP-X5,not-a-date,,RESIDENTIAL,false", "bad_timestamp"),
        ("IE-X6,R02,SP-X6,2026-01-01T00:00:00Z,,RESIDENTIAL,maybe", "bad_boolean"),
        ("IE-X7,R02,,2026-01-01T00:00:00Z,,RESIDENTIAL,false", "missing_required"),
        ("IE-X8,R02,SP-X8,2026-01-01T00:00:00Z,,RESIDENTIAL", "malformed_row"),
        (
            "IE-DUP,OLD1,SP-D1,2024-01-01T00:00:00Z,2024-02-01T00:00:00Z,RESIDENTIAL,false",
            "duplicate_key",
        ),
        (
            "IE-DUP,OLD1,SP-D2,2024-01-01T00:00:00Z,2024-02-01T00:00:00Z,RESIDENTIAL,false",
            "duplicate_key",
        ),
        ("IE-R03,R03,SP-R03,2026-01-01T00:00:00Z,,RESIDENTIAL,false", "deduplicated"),
        (
            "IE-OLD1,OLD1,SP-OLD1,2025-01-01T00:00:00Z,2025-06-01T00:00:00Z,RESIDENTIAL,false",
            "outside_window",
        ),
        ("IE-OLD1-2,OLD1,SP-OLD1,2026-12-01T00:00:00Z,,COMMERCIAL,false", "outside_window"),
    ],
    "measurements": [
        ("R01-IMP,2026-10-10T00:00:00Z", "malformed_row"),
        ("R01-IMP,2026-10-10T00:00:00Z,9800.0,7", "malformed_row"),
        ('R01-IMP,"2026-10-10T00:30:00Z,1.0', "malformed_row"),
        ("R01-IMP,2026-10-10 25:00,5.0", "bad_timestamp"),
        ("R01-IMP,2026-10-10T00:30:00Z,abc", "bad_number"),
        ("R01-IMP,2026-10-10T00:45:00Z,NaN", "bad_number"),
        ("R01-IMP,,5.0", "missing_required"),
        (",2026-10-10T00:30:00Z,5.0", "missing_required"),
        ("R21-IMP,2026-10-10T00:30:00Z,-1.0", "negative_value"),
        ("R01-IMP,2026-11-21T00:00:00Z,9999.0", "future_timestamp"),
        ("NOPE-IMP,2026-10-10T00:00:00Z,1.0", "unknown_component"),
        ("DUPC-IMP,2026-10-10T00:00:00Z,1.0", "unknown_component"),  # its component is rejected
        ("R05-IMP,2026-10-10T05:30:00Z,123.0", "conflicting_duplicate"),
        ("R05-IMP,2026-10-10T05:30:00Z,124.0", "conflicting_duplicate"),
        # Copies of clean readings: exact, with another spelling of the value, at another
        # offset, and of a reading before B (duplicates are settled before the window's edges).
        ("R03-IMP,2026-11-05T10:00:00Z,1370.6110", "deduplicated"),
        ("R04-IMP,2026-11-06T11:00:00Z,1398.8301", "deduplicated"),
        ("R06-IMP,2026-10-20T12:00:00Z,1212.68", "deduplicated"),
        ("R07-IMP,2026-11-07T10:00:00+01:00,1462.1914", "deduplicated"),
        ("R01-IMP,2026-10-04T01:00:00Z,9800.2100", "deduplicated"),
        # Valid, but not needed: after W (a longer extract), long before B, before B but not
        # the last reading before B.
        ("R01-IMP,2026-11-17T00:00:00Z,9999.0", "outside_window"),
        ("R02-IMP,2026-09-01T00:00:00Z,100.0", "outside_window"),
        ("R02-IMP,2026-10-04T00:30:00Z,1.0", "outside_window"),
        *[(line, "used") for line in VOLTAGE_READINGS],
    ],
}


@dataclass
class JobRun:
    """One run of the job: its exit code, config, input and output."""

    exit_code: int
    config: Path
    input: Path
    output: Path

    def report(self, run_date: str = RUN_DATE) -> dict[str, Any]:
        """The published run report."""
        return json.loads(
            (self.output / "reports" / f"run_date={run_date}" / "report.json").read_text()
        )

    def read(self, spark: SparkSession, table: str, run_date: str = RUN_DATE) -> DataFrame:
        """A published output, as stored."""
        return read_published(spark, str(self.output), table, date.fromisoformat(run_date))


def run_job(config: Path, run_date: str = RUN_DATE) -> int:
    """Run the job as ``main`` does, with the run's start instant pinned."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datalake_job, "run_start_instant", lambda: RUN_STARTED_AT)
        return datalake_job.main(["--config", str(config), "--run-date", run_date])


def write_dirty_input(directory: Path) -> Path:
    """A copy of tests/test_data with one more part file per table holding DIRTY_ROWS."""
    shutil.copytree(TEST_DATA, directory)
    for table, rows in DIRTY_ROWS.items():
        header = (TEST_DATA / table / "part-00000.csv").read_text().splitlines()[0]
        lines = [header, *(line for line, _ in rows)]
        (directory / table / "part-00001.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def files(directory: Path) -> dict[str, bytes]:
    """Every file below ``directory`` by relative path, with its bytes."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def parquet_bytes(spark: SparkSession, run: JobRun, table: str) -> list[bytes]:
    """The bytes of each Parquet file of ``table``'s current version for the run date (file
    names hold random ids)."""
    partition = f"/run_date={RUN_DATE}/"
    current = spark.read.format("delta").load(str(run.output / table)).inputFiles()
    return sorted(
        Path(urllib.parse.urlparse(file).path).read_bytes() for file in current if partition in file
    )


@pytest.fixture(scope="module")
def clean_run(sample_published: Path) -> JobRun:
    """The job on the clean sample: the suite's run of it (``sample_published``: the same
    config, run date and input; it ran successfully). Its run started at
    SAMPLE_RUN_STARTED_AT, before RUN_STARTED_AT, which changes nothing: the sample has no
    reading stamped after either (else it would have future_timestamp rejects, which
    test_clean_sample_reconciles_with_nothing_rejected rules out). Read it, never write into it."""
    return JobRun(
        datalake_job.EXIT_OK,
        sample_published.parent / "job_config.json",
        TEST_DATA,
        sample_published,
    )


@pytest.fixture(scope="module")
def dirty_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> JobRun:
    """The job on the dirty copy of the sample."""
    directory = tmp_path_factory.mktemp("dirty")
    data = write_dirty_input(directory / "input")
    config = write_job_config(directory, {"input": {"path": str(data)}})
    return JobRun(run_job(config), config, data, directory / "output")


def test_every_bad_row_is_counted_under_its_reason(clean_run: JobRun, dirty_run: JobRun) -> None:
    # GIVEN the clean and the dirty run (the dirty input: the clean one plus DIRTY_ROWS)
    assert (clean_run.exit_code, dirty_run.exit_code) == (0, 0)
    clean, dirty = clean_run.report()["counts"], dirty_run.report()["counts"]

    for table, rows in DIRTY_ROWS.items():
        # WHEN the extra rows of the table are tallied by the status each must get
        statuses = Counter(status for _, status in rows)
        not_rejected = ("used", "deduplicated", "outside_window")
        reasons = {status: n for status, n in statuses.items() if status not in not_rejected}

        # THEN the report counts exactly those, over the clean counts, and reconciles
        assert dirty[table]["rejected_by_reason"] == dict(sorted(reasons.items())), table
        assert dirty[table]["read"] == clean[table]["read"] + len(rows), table
        for count in not_rejected:
            assert dirty[table][count] == clean[table][count] + statuses[count], (table, count)
        assert dirty[table]["rejected"] == sum(reasons.values()), table
        assert dirty[table]["read"] == sum(dirty[table][c] for c in (*not_rejected, "rejected"))

    # THEN every reason the contract names was produced
    produced = {reason for entry in dirty.values() for reason in entry["rejected_by_reason"]}
    assert produced >= CONTRACT_REASONS


def test_clean_sample_reconciles_with_nothing_rejected(
    spark: SparkSession, clean_run: JobRun
) -> None:
    # GIVEN the clean run
    counts = clean_run.report()["counts"]

    # THEN nothing was rejected or deduplicated, every row is used or outside the window,
    # and the published rejects partition exists, empty
    for table, entry in counts.items():
        assert entry["rejected"] == entry["deduplicated"] == 0, table
        assert entry["rejected_by_reason"] == {}, table
        assert entry["read"] == entry["used"] + entry["outside_window"] > 0, table
    assert clean_run.read(spark, "rejects").count() == 0


def test_rejects_keep_each_original_row_as_json(spark: SparkSession, dirty_run: JobRun) -> None:
    # GIVEN the published rejects of the dirty run
    rejects = dirty_run.read(spark, "rejects").collect()

    # THEN they are the rejected dirty rows, one each, under their table and reason
    expected = Counter(
        (table, status)
        for table, rows in DIRTY_ROWS.items()
        for _, status in rows
        if status not in ("used", "deduplicated", "outside_window")
    )
    assert Counter((row["table"], row["reason"]) for row in rejects) == expected
    records = {(row["table"], row["reason"]): json.loads(row["record"]) for row in rejects}

    # THEN a record holds every column as read, nulls included
    assert records[("measurements", "future_timestamp")] == {
        "measuring_component_id": "R01-IMP",
        "measured_at": "2026-11-21T00:00:00Z",
        "value": "9999.0",
    }
    assert records[("install_event", "bad_boolean")]["has_generation"] == "maybe"
    assert records[("install_event", "bad_boolean")]["removed_at"] is None
    # THEN a line that did not parse keeps its text
    assert records[("device", "malformed_row")]["_corrupt_record"] == "X02,SN-X02,ELECTRIC_METER"


def test_good_rows_of_dirty_input_give_the_same_results_as_clean_input(
    spark: SparkSession, clean_run: JobRun, dirty_run: JobRun
) -> None:
    # GIVEN the clean and the dirty run
    # THEN alerts and findings are the same, row for row, and so are the findings per rule
    for table in ("alerts", "findings"):
        assert_df_equality(dirty_run.read(spark, table), clean_run.read(spark, table))
    assert dirty_run.read(spark, "alerts").count() > 0
    assert dirty_run.report()["findings_by_rule"] == clean_run.report()["findings_by_rule"]


def test_backfill_of_an_earlier_run_date_reconciles(spark: SparkSession, dirty_run: JobRun) -> None:
    # GIVEN the dirty input and an earlier run date: the extract runs a week past its W
    config = load_config(str(dirty_run.config))
    window = RunWindow.from_config(date.fromisoformat(BACKFILL_DATE), config)

    # WHEN its rows are validated and counted
    raw = extract(spark, config["input"], window)
    checked = validate_tables(raw, window)
    readings = checked_readings(readings_inputs(checked, config["usage"], window, RUN_STARTED_AT))
    counts = count_rows(checked, readings, count_read(raw["measurements"], "measurements"))

    # THEN every row is accounted for; the readings stamped after the backfill's W and
    # before the run started (counted here straight from the files) are outside the window,
    # with the one long before B; the copy of a reading before B is now a duplicate in B;
    # the bad rows are the same as for the later run date
    stamps = [
        line.split(",")[1]
        for path in (dirty_run.input / "measurements").glob("*.csv")
        for line in path.read_text().splitlines()[1:]
    ]
    after_window = sum(1 for stamp in stamps if "2026-11-09T00:00:00Z" < stamp < "2026-11-20")
    assert counts["measurements"]["outside_window"] == after_window + 1
    assert counts["measurements"]["deduplicated"] == 5
    for table, entry in counts.items():
        assert entry["read"] == sum(
            entry[c] for c in ("used", "rejected", "deduplicated", "outside_window")
        )
        assert (
            entry["rejected_by_reason"] == dirty_run.report()["counts"][table]["rejected_by_reason"]
        )


def test_counts_that_do_not_reconcile_fail_the_run(spark: SparkSession) -> None:
    # GIVEN four tables of two rows each, of which validation lost one measurement
    raw = {
        table: spark.range(2)
        for table in ("device", "measuring_component", "install_event", "measurements")
    }
    statuses = {
        table: spark.createDataFrame([("used",), ("deduplicated",)], "status string")
        for table in raw
    }
    statuses["measurements"] = spark.createDataFrame([("used",)], "status string")

    # WHEN the rows are counted THEN the run fails, naming the table
    with pytest.raises(RuntimeError, match="table measurements: counts do not reconcile"):
        count_rows(ValidatedTables(raw, statuses), statuses["measurements"], 2)


@pytest.fixture
def published_copy(dirty_run: JobRun, tmp_path: Path) -> JobRun:
    """The dirty run's published output copied aside, with a config that writes there."""
    output = tmp_path / "output"
    shutil.copytree(dirty_run.output, output)
    config = write_job_config(tmp_path, {"input": {"path": str(dirty_run.input)}})
    return JobRun(dirty_run.exit_code, config, dirty_run.input, output)


def test_rerun_gives_identical_outputs_and_leaves_other_dates_alone(
    spark: SparkSession, dirty_run: JobRun, published_copy: JobRun
) -> None:
    # GIVEN the dirty run's output, and another run date published next to it
    other_day = date(2026, 11, 14)
    other_date = published_copy.output / "alerts" / f"run_date={other_day}"
    commit_table(
        published_copy.read(spark, "alerts"), str(published_copy.output), "alerts", other_day
    )
    other_before = files(other_date)

    # WHEN the job runs again on the same input
    assert run_job(published_copy.config) == 0

    # THEN every output holds the same rows in the same order, byte for byte
    for table in OUTPUTS:
        assert published_copy.read(spark, table).collect() == dirty_run.read(spark, table).collect()
        assert parquet_bytes(spark, published_copy, table) == parquet_bytes(spark, dirty_run, table)
    for key in ("counts", "findings_by_rule", "alerts"):
        assert published_copy.report()[key] == dirty_run.report()[key], key
    # THEN the other run date is untouched and no staging is left behind
    assert files(other_date) == other_before
    assert not (published_copy.output / "_staging" / f"run_date={RUN_DATE}").exists()


def test_run_failing_after_its_first_output_leaves_the_published_date_intact(
    spark: SparkSession, dirty_run: JobRun, published_copy: JobRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the dirty run's published output, and a run that fails once its first output
    # has been written
    before = files(published_copy.output)
    real_parquet = DataFrameWriter.parquet
    written: list[str] = []

    def parquet(writer: DataFrameWriter, path: str, *args: Any, **kwargs: Any) -> None:
        if written:
            raise RuntimeError(f"injected failure after writing {written[0]}")
        real_parquet(writer, path, *args, **kwargs)
        written.append(path)

    monkeypatch.setattr(DataFrameWriter, "parquet", parquet)

    # WHEN the job runs
    exit_code = run_job(published_copy.config)
    monkeypatch.undo()

    # THEN it fails after one output was written, and every published file is as before,
    # readable, with the same rows; nothing of the failed run is left
    assert exit_code != 0
    assert len(written) == 1
    assert files(published_copy.output) == before
    for table in OUTPUTS:
        assert_df_equality(published_copy.read(spark, table), dirty_run.read(spark, table))
    assert published_copy.report() == dirty_run.report()
