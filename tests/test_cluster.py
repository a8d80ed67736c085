"""The job on a real Spark standalone cluster (one master, one worker, on 127.0.0.1), submitted
the way make submit does it: ``--py-files packages.zip --files CONFIG``. In local mode a broken
package goes unnoticed; here the driver imports the job's modules and boto3 from the zip only.

The cluster run must publish exactly what a local run publishes on the same input, and the
same submit without the zip must fail: the zip is what made it work.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from conftest import RUN_DATE, SPARK_HOME, TEST_DATA, cluster_environment, stop_group
from pyspark.sql import SparkSession

from dependencies import s3
from dependencies.jars import DELTA_PACKAGES, jar_paths
from dependencies.publish import read_published
from dependencies.submit import Submission
from dependencies.tables import TABLE_NAMES
from jobs import datalake_job

SUBMIT_SECONDS = 900
OUTPUT_TABLES = ("alerts", "findings", "rejects")
REPORT_BUCKET = "datalake-reports"


@dataclass(frozen=True)
class Finished:
    """A finished process: exit code and output."""

    returncode: int
    stdout: str
    stderr: str


def run_bounded(command: list[str], cwd: Path, timeout: float) -> Finished:
    """Run ``command``; kill it and fail the test if it takes longer than ``timeout``."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=cluster_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(process)
        pytest.fail(f"{command[0]} did not finish within {timeout} s")
    return Finished(process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def marked_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample with every table marked complete (``_SUCCESS``)."""
    copy = tmp_path_factory.mktemp("input") / "mdm"
    shutil.copytree(TEST_DATA, copy)
    for table in TABLE_NAMES:
        (copy / table / "_SUCCESS").touch()
    return copy


def job_config(directory: Path, marked_input: Path, moto_server: str) -> Path:
    """A config that requires the markers and copies the report to S3 (moto)."""
    config = {
        "input": {"path": str(marked_input), "format": "csv", "require_success_marker": True},
        "output": {
            "path": str(directory / "output"),
            "report_s3_url": f"s3://{REPORT_BUCKET}/cluster",
        },
        "spark": {"spark.sql.shuffle.partitions": "2"},
        "aws": {"endpoint_url": moto_server, "region": "us-east-1"},
    }
    path = directory / "datalake_config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def report_bucket(moto_server: str) -> Any:
    """The S3 bucket (moto) the cluster run copies its report to; its client."""
    client = s3.client(
        {"region": "us-east-1", "profile": "", "endpoint_url": moto_server, "max_attempts": 2}
    )
    client.create_bucket(Bucket=REPORT_BUCKET)
    return client


@pytest.fixture(scope="module")
def cluster_submission(
    spark_cluster: str,
    packages_zip: Path,
    tmp_path_factory: pytest.TempPathFactory,
    marked_input: Path,
    moto_server: str,
    report_bucket: Any,
) -> tuple[Submission, Path]:
    """How make submit would submit the job to the test cluster, and the run's directory."""
    directory = tmp_path_factory.mktemp("cluster_run")
    config = job_config(directory, marked_input, moto_server)
    extra = ("--driver-memory", "1g", "--executor-memory", "1g", "--conf", "spark.log.level=WARN")
    return Submission(
        str(SPARK_HOME / "bin" / "spark-submit"),
        spark_cluster,
        "client",
        str(packages_zip),
        str(config),
        extra,
        jars=tuple(str(path) for path in jar_paths(DELTA_PACKAGES)),
    ), directory


@pytest.fixture(scope="module")
def cluster_run_started(cluster_submission: tuple[Submission, Path]) -> Iterator[Future[Finished]]:
    """The job spark-submitted to the cluster with packages.zip, in the background."""
    submission, directory = cluster_submission
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(
            run_bounded, submission.command(date.fromisoformat(RUN_DATE)), directory, SUBMIT_SECONDS
        )


@pytest.fixture(scope="module")
def cluster_run(
    cluster_submission: tuple[Submission, Path], cluster_run_started: Future[Finished]
) -> Path:
    """The job spark-submitted to the cluster with packages.zip, finished; its output path."""
    finished = cluster_run_started.result()
    assert finished.returncode == datalake_job.EXIT_OK, finished.stderr[-5000:]
    return cluster_submission[1] / "output"


def published(output: Path, table: str) -> Path:
    return output / table / f"run_date={RUN_DATE}"


@pytest.mark.usefixtures("cluster_run_started")  # first: the suite's local run meanwhile
def test_the_cluster_run_publishes_what_the_local_run_publishes(
    spark: SparkSession, sample_published: Path, cluster_run: Path
) -> None:
    # GIVEN the sample run locally (the suite's run of it, in this process) and on the
    # cluster (its copy marked complete, the report copied to S3)
    local_run = sample_published
    local_report = json.loads((published(local_run, "reports") / "report.json").read_text())
    cluster_report = json.loads((published(cluster_run, "reports") / "report.json").read_text())

    # THEN the cluster ran it, and every output table holds the same rows in the same order
    assert cluster_report["spark_application_id"].startswith("app-")
    assert local_report["spark_application_id"].startswith("local-")
    assert cluster_report["counts"] == local_report["counts"]
    assert cluster_report["findings_by_rule"] == local_report["findings_by_rule"]
    assert cluster_report["alerts"] == local_report["alerts"] > 0
    for table in OUTPUT_TABLES:
        local_rows = read_published(spark, str(local_run), table, date.fromisoformat(RUN_DATE))
        cluster_rows = read_published(spark, str(cluster_run), table, date.fromisoformat(RUN_DATE))
        assert_df_equality(local_rows, cluster_rows)


def test_the_cluster_run_copied_its_report_to_s3(cluster_run: Path, report_bucket: Any) -> None:
    # GIVEN the run configured to copy its report to S3: boto3 came from packages.zip on the
    # cluster's driver
    url = f"s3://{REPORT_BUCKET}/cluster/run_date={RUN_DATE}/report.json"
    # THEN the copy is the published report
    copied = json.loads(s3.read_text(report_bucket, url))
    assert copied == json.loads((published(cluster_run, "reports") / "report.json").read_text())


def test_without_the_zip_the_same_submit_fails(cluster_submission: tuple[Submission, Path]) -> None:
    # GIVEN the same submit command without --py-files packages.zip
    submission, directory = cluster_submission
    command = submission.command(date.fromisoformat(RUN_DATE))
    at = command.index("--py-files")
    del command[at : at + 2]

    # WHEN it is submitted to the cluster
    finished = run_bounded(command, directory, SUBMIT_SECONDS)

    # THEN the driver cannot import the job's modules (spark-submit relays its stderr on stdout)
    assert finished.returncode != 0
    assert "ModuleNotFoundError: No module named 'dependencies'" in finished.stdout


def test_a_setting_the_submitted_session_lacks_is_named(
    cluster_run_started: Future[Finished],
) -> None:
    # GIVEN the job spark-submitted with --driver-memory 1g, its config (the bundled defaults)
    # asking for 8g
    finished = cluster_run_started.result()
    # THEN the run's log (the console, on stdout) says so, with the option that would apply
    # it, instead of ignoring it
    assert (
        "config setting spark[spark.driver.memory] is not applied: "
        "the session spark-submit started has another value (pass --conf spark.driver.memory=8g "
        "to spark-submit)"
    ) in finished.stdout
