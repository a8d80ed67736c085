"""Input readiness: with ``input.require_success_marker``, no run starts before every input
table carries its ``_SUCCESS`` marker, on local paths and on S3 (moto)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import RUN_DATE, TEST_DATA
from pyspark.sql import SparkSession

from dependencies import s3
from dependencies.readiness import InputNotReady, missing_markers, require_ready
from dependencies.tables import TABLE_NAMES
from jobs import datalake_job

BUCKET = "datalake-input"


def test_a_missing_marker_stops_the_run_with_its_code_and_publishes_nothing(
    spark: SparkSession, tmp_path: Path, write_config: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a copy of the sample where every table but measurements is marked complete
    input_copy = tmp_path / "input"
    shutil.copytree(TEST_DATA, input_copy)
    for table in ("device", "measuring_component", "install_event"):
        (input_copy / table / "_SUCCESS").touch()
    config = write_config({"input": {"path": str(input_copy), "require_success_marker": True}})

    # WHEN the job runs
    code = datalake_job.main(["--config", str(config), "--run-date", RUN_DATE])

    # THEN it exits "input not ready", naming only the missing marker, and writes nothing
    assert code == datalake_job.EXIT_INPUT_NOT_READY
    error = capsys.readouterr().err
    assert f"input not ready: no _SUCCESS marker yet: {input_copy}/measurements/_SUCCESS" in error
    assert "device/_SUCCESS" not in error
    assert not (tmp_path / "output").exists()


def test_markers_are_not_checked_unless_required(spark: SparkSession, tmp_path: Path) -> None:
    # GIVEN an input without any marker
    input_config = {"path": str(TEST_DATA), "require_success_marker": False}
    # WHEN readiness is required only by config THEN nothing is raised without it, and with it
    # every table is named
    require_ready(spark, input_config, TABLE_NAMES, {})
    with pytest.raises(InputNotReady, match=r"install_event/_SUCCESS, .*measurements/_SUCCESS"):
        require_ready(spark, {**input_config, "require_success_marker": True}, TABLE_NAMES, {})


def test_markers_on_s3(spark: SparkSession, moto_aws_config: dict[str, Any]) -> None:
    # GIVEN an S3 input where three of the four tables carry their marker
    client = s3.client(moto_aws_config)
    client.create_bucket(Bucket=BUCKET)
    for table in TABLE_NAMES[:3]:
        client.put_object(Bucket=BUCKET, Key=f"mdm/2026-11-15/{table}/part-0.csv", Body=b"a,b\n")
        client.put_object(Bucket=BUCKET, Key=f"mdm/2026-11-15/{table}/_SUCCESS", Body=b"")
    client.put_object(Bucket=BUCKET, Key="mdm/2026-11-15/measurements/part-0.csv", Body=b"a,b\n")

    # WHEN the markers are checked through boto3
    missing = missing_markers(spark, f"s3://{BUCKET}/mdm/2026-11-15/", TABLE_NAMES, moto_aws_config)

    # THEN only the fourth table's marker is missing; once it lands, none is
    assert missing == [f"s3://{BUCKET}/mdm/2026-11-15/measurements/_SUCCESS"]
    client.put_object(Bucket=BUCKET, Key="mdm/2026-11-15/measurements/_SUCCESS", Body=b"")
    assert (
        missing_markers(spark, f"s3://{BUCKET}/mdm/2026-11-15", TABLE_NAMES, moto_aws_config) == []
    )
