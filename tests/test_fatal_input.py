"""Input the job cannot use at all stops the run: one line naming the table, a non-zero exit
code, and nothing published for the run date."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RUN_DATE, TEST_DATA
from pyspark.sql import SparkSession

from jobs import datalake_job


def remove_install_events(spark: SparkSession, data: Path) -> str:
    shutil.rmtree(data / "install_event")
    return "table install_event: directory not found"


def remove_install_event_files(spark: SparkSession, data: Path) -> str:
    for path in (data / "install_event").iterdir():
        path.unlink()
    return "table install_event: no CSV file with a header line"


def drop_value_column(spark: SparkSession, data: Path) -> str:
    (data / "measurements" / "part-00000.csv").write_text(
        "measuring_component_id,measured_at\nR01-IMP,2026-11-05T10:00:00Z\n", encoding="utf-8"
    )
    return "table measurements: missing required column value"


def empty_devices(spark: SparkSession, data: Path) -> str:
    path = data / "device" / "part-00000.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n", encoding="utf-8")
    return "table device: no rows"


def reorder_device_columns_in_one_file(spark: SparkSession, data: Path) -> str:
    (data / "device" / "part-00001.csv").write_text(
        "serial_number,device_id,device_type,manufacturer,model\nSN-X,X,ELECTRIC_METER,Acme,AM-1\n",
        encoding="utf-8",
    )
    return "table device: cannot read"


def corrupt_a_parquet_file(spark: SparkSession, data: Path) -> str:
    converted = data.parent / "parquet"
    for table in ("device", "measuring_component", "install_event", "measurements"):
        spark.read.option("header", True).csv(str(data / table)).write.parquet(
            str(converted / table)
        )
    shutil.rmtree(data)
    converted.rename(data)
    (data / "measurements" / "part-00099-corrupt.parquet").write_bytes(b"PAR1 this is not parquet")
    return "table measurements: cannot read"


@pytest.mark.parametrize(
    "break_input",
    [
        remove_install_events,
        remove_install_event_files,
        drop_value_column,
        empty_devices,
        reorder_device_columns_in_one_file,
        corrupt_a_parquet_file,
    ],
)
def test_unusable_input_stops_the_run_and_publishes_nothing(
    spark: SparkSession,
    tmp_path: Path,
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    break_input: Callable[[SparkSession, Path], str],
) -> None:
    # GIVEN a copy of the sample with one table broken
    data = tmp_path / "input"
    shutil.copytree(TEST_DATA, data)
    expected_error = break_input(spark, data)
    file_format = "parquet" if any((data / "device").glob("*.parquet")) else "csv"
    config = write_config({"input": {"path": str(data), "format": file_format}})

    # WHEN the job runs
    exit_code = datalake_job.main(["--config", str(config), "--run-date", RUN_DATE])

    # THEN it exits non-zero with one error line naming the table, and publishes nothing
    assert exit_code != 0
    errors = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("datalake: ")
    ]
    assert len(errors) == 1
    assert errors[0].startswith(f"datalake: bad input: {expected_error}")
    assert not list((tmp_path / "output").rglob(f"run_date={RUN_DATE}"))
