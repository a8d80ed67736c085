"""The whole job on S3: the sample (its readings by day) uploaded to a bucket of moto's server
on 127.0.0.1, read and published through ``s3a://`` (Hadoop's S3A, Delta Lake on S3) into
another bucket, as production lays it out (the meter-data system exports to a bucket of its
own), twice: the second run reuses the readings' ledger the first stored on S3, and
publishes identical outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, RUN_DATE, SMALL_SPARK, TEST_DATA, in_background, write_job_config
from deltalake import DeltaTable

from dependencies import s3
from dependencies.publish import ORDER
from dependencies.publish import RUN_DATE as RUN_DATE_COLUMN
from dependencies.tables import MEASURED_DATE, TABLE_NAMES

# The meter-data system's exports, and the lake the job publishes to.
INPUT_BUCKET = "datalake-s3a-exports"
OUTPUT_BUCKET = "datalake-s3a-lake"
JOB_SECONDS = 900
JOB = REPO / "jobs" / "datalake_job.py"


def s3a_settings(endpoint: str) -> dict[str, str]:
    """What a user puts in the config's ``spark`` section for an S3 server (docs/s3.md)."""
    return {
        "spark.hadoop.fs.s3a.endpoint": endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": "us-east-1",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        ),
        "spark.hadoop.fs.s3a.access.key": "testing",
        "spark.hadoop.fs.s3a.secret.key": "testing",
    }


def first_error(stderr: str) -> str:
    """Where a failed run's output first names an error (a dead JVM shows only as a refused
    connection at its end), 2,000 characters of it; empty if none does."""
    found = [
        at for at in (stderr.find(word) for word in ("Traceback", "ERROR", "Exception")) if at >= 0
    ]
    return f"{stderr[min(found) : min(found) + 2000]}\n...\n" if found else ""


def run_job(config: Path, run_date: str) -> None:
    """Run the job as ``DEBUG=1 python jobs/datalake_job.py`` does, in its own process; it
    must succeed."""
    finished = subprocess.run(
        [sys.executable, str(JOB), "--config", str(config), "--run-date", run_date],
        cwd=REPO,
        env={**os.environ, "DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=JOB_SECONDS,
        check=False,
    )
    assert finished.returncode == 0, (
        f"{run_date}: {first_error(finished.stderr)}{finished.stderr[-3000:]}"
    )


def report(client: Any, run_date: str) -> dict[str, Any]:
    """The run report published on S3 for ``run_date``."""
    key = f"output/reports/run_date={run_date}/report.json"
    return json.loads(client.get_object(Bucket=OUTPUT_BUCKET, Key=key)["Body"].read())


def published(endpoint: str) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows for RUN_DATE on S3, as delta-rs (no Spark) reads them."""
    options = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    rows = {}
    for table in ORDER:
        delta = DeltaTable(f"s3://{OUTPUT_BUCKET}/output/{table}", storage_options=options)
        rows[table] = delta.to_pyarrow_table(
            partitions=[(RUN_DATE_COLUMN, "=", RUN_DATE)]
        ).to_pylist()
    return rows


def upload_sample(client: Any) -> None:
    """The sample's tables into the bucket under ``input/``; the readings by day
    (``measured_date=D``, the UTC date of ``measured_at``), as an export lands them, so that
    runs can reuse the readings' ledger store."""
    for table in TABLE_NAMES:
        if table == "measurements":
            continue
        for part in sorted((TEST_DATA / table).glob("*.csv")):
            client.upload_file(str(part), INPUT_BUCKET, f"input/{table}/{part.name}")
    header, *lines = (TEST_DATA / "measurements" / "part-00000.csv").read_text().splitlines()
    days: dict[str, list[str]] = {}
    for line in lines:
        days.setdefault(line.split(",")[1][:10], []).append(line)
    for day, rows in days.items():
        key = f"input/measurements/{MEASURED_DATE}={day}/part-00000.csv"
        body = "\n".join([header, *rows, ""]).encode()
        client.put_object(Bucket=INPUT_BUCKET, Key=key, Body=body)


def run_twice(moto_server: str, directory: Path) -> dict[str, Any]:
    """The sample in a bucket; the job run on it for RUN_DATE twice: each run's report and
    the published rows after it."""
    aws_config = {"region": "us-east-1", "profile": "", "endpoint_url": moto_server}
    client = s3.client({**aws_config, "max_attempts": 2})
    for bucket in (INPUT_BUCKET, OUTPUT_BUCKET):
        client.create_bucket(Bucket=bucket)
    upload_sample(client)
    config = write_job_config(
        directory,
        {
            "input": {"path": f"s3a://{INPUT_BUCKET}/input"},
            "output": {"path": f"s3a://{OUTPUT_BUCKET}/output"},
            "spark": {**SMALL_SPARK, **s3a_settings(moto_server)},
            "aws": aws_config,
        },
    )
    runs: dict[str, Any] = {"client": client}
    for name in ("first", "again"):
        run_job(config, RUN_DATE)
        runs[name] = {"report": report(client, RUN_DATE), "rows": published(moto_server)}
    return runs


@in_background
def run_on_s3a(request: pytest.FixtureRequest, pool: ThreadPoolExecutor) -> Future:
    """The two runs, in the background."""
    directory = request.getfixturevalue("tmp_path_factory").mktemp("s3a")
    return pool.submit(run_twice, request.getfixturevalue("moto_server"), directory)


@pytest.fixture(scope="module")
def s3a_runs(background_runs: dict[str, Future]) -> dict[str, Any]:
    """The two runs, finished."""
    return background_runs[__name__].result()


def test_the_job_reads_and_publishes_on_s3a(s3a_runs: dict[str, Any]) -> None:
    # GIVEN the sample in one bucket WHEN the job runs with its output in another, on s3a://
    first = s3a_runs["first"]
    # THEN it read the sample and found its 10 alerts, and the published tables are Delta
    # tables on S3 that delta-rs reads: 10 alerts, 420 evidence rows (10 devices x 42 days)
    assert first["report"]["alerts"] == 10
    assert first["report"]["counts"]["measurements"]["read"] > 0
    assert len(first["rows"]["alerts"]) == 10
    assert len(first["rows"]["evidence"]) == 420


def test_a_rerun_on_s3a_reuses_the_stored_ledger_and_publishes_identical_rows(
    s3a_runs: dict[str, Any],
) -> None:
    # GIVEN the same run date run twice
    first, again = s3a_runs["first"], s3a_runs["again"]
    # THEN the first run stored the readings' ledger on S3 and the re-run reused its days
    assert first["report"]["ledger"]["mode"] == "incremental"
    assert first["report"]["ledger"]["reused_days"] == []
    assert again["report"]["ledger"]["mode"] == "incremental"
    assert again["report"]["ledger"]["reused_days"][-1] == RUN_DATE
    assert [part["days"] for part in again["report"]["ledger"]["computed"]] == [
        (date.fromisoformat(RUN_DATE) + timedelta(days=1)).isoformat()
    ]
    # AND the re-run published exactly the first run's rows, counts and findings
    assert again["rows"] == first["rows"]
    for key in ("counts", "findings_by_rule", "alerts"):
        assert again["report"][key] == first["report"][key], key
    # AND each table's log holds one commit per run; Delta writes no commit that changes
    # nothing: the sample's empty rejects, once created
    client = s3a_runs["client"]
    for table in ORDER:
        prefix = f"output/{table}/_delta_log/"
        listing = client.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix=prefix)
        commits = [o["Key"] for o in listing.get("Contents", []) if o["Key"].endswith(".json")]
        assert len(commits) == (2 if first["rows"][table] else 1), table
    # AND each run (DEBUG=1, outside make submit) held the output's lock and released it
    assert "Contents" not in client.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="output/_lock")
