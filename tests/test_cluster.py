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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from conftest import RUN_DATE, SPARK_HOME, TEST_DATA, cluster_environment, in_background, stop_group
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


def marked_input(directory: Path) -> Path:
    """A copy of the sample with every table marked complete (``_SUCCESS``)."""
    copy = directory / "mdm"
    shutil.copytree(TEST_DATA, copy)
    for table in TABLE_NAMES:
        (copy / table / "_SUCCESS").touch()
    return copy


def job_config(directory: Path, moto_server: str) -> Path:
    """A config that requires the markers (on a marked copy of the sample) and copies the
    report to S3 (moto)."""
    config = {
        "input": {
            "path": str(marked_input(directory)),
            "format": "csv",
            "require_success_marker": True,
        },
        "output": {
            "path": str(directory / "output"),
            "report_s3_url": f"s3://{REPORT_BUCKET}/cluster",
        },
        "spark": {"spark.sql.shuffle.partitions": "2"},
        # Adaptive execution whatever the input's size: this run checks that it publishes
        # the rows the suite's run (without it) publishes.
        "adaptive_execution_min_input_mib": 0,
        "aws": {"endpoint_url": moto_server, "region": "us-east-1"},
    }
    path = directory / "datalake_config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def report_client(moto_server: str) -> Any:
    """A client of the S3 server (moto) the cluster run copies its report to."""
    return s3.client(
        {"region": "us-east-1", "profile": "", "endpoint_url": moto_server, "max_attempts": 2}
    )


@dataclass(frozen=True)
class ClusterRun:
    """How make submit would submit the job to the test cluster, the run's directory, and
    the finished run."""

    submission: Submission
    directory: Path
    finished: Finished


@in_background
def submit_the_sample(request: pytest.FixtureRequest, pool: ThreadPoolExecutor) -> Future:
    """The job spark-submitted to the cluster with packages.zip, in the background."""
    moto_server = request.getfixturevalue("moto_server")
    directory = request.getfixturevalue("tmp_path_factory").mktemp("cluster_run")
    report_client(moto_server).create_bucket(Bucket=REPORT_BUCKET)
    extra = ("--driver-memory", "1g", "--executor-memory", "1g", "--conf", "spark.log.level=WARN")
    submission = Submission(
        str(SPARK_HOME / "bin" / "spark-submit"),
        request.getfixturevalue("spark_cluster"),
        "client",
        str(request.getfixturevalue("packages_zip")),
        str(job_config(directory, moto_server)),
        extra,
        jars=tuple(str(path) for path in jar_paths(DELTA_PACKAGES)),
    )
    command = submission.command(date.fromisoformat(RUN_DATE))
    return pool.submit(
        lambda: ClusterRun(submission, directory, run_bounded(command, directory, SUBMIT_SECONDS))
    )


@pytest.fixture(scope="module")
def cluster(background_runs: dict[str, Future]) -> ClusterRun:
    """The cluster run, finished."""
    return background_runs[__name__].result()


@pytest.fixture(scope="module")
def cluster_run(cluster: ClusterRun) -> Path:
    """The cluster run, succeeded: its output path."""
    assert cluster.finished.returncode == datalake_job.EXIT_OK, cluster.finished.stderr[-5000:]
    return cluster.directory / "output"


def published(output: Path, table: str) -> Path:
    return output / table / f"run_date={RUN_DATE}"


def test_the_cluster_run_publishes_what_the_local_run_publishes(
    spark: SparkSession, sample_published: Path, cluster: ClusterRun, cluster_run: Path
) -> None:
    # GIVEN the sample run locally (the suite's run of it, in this process) and on the
    # cluster (its copy marked complete, the report copied to S3)
    local_run = sample_published
    local_report = json.loads((published(local_run, "reports") / "report.json").read_text())
    cluster_report = json.loads((published(cluster_run, "reports") / "report.json").read_text())

    # THEN the cluster ran it with adaptive execution (the suite's run without), and every
    # output table holds the same rows in the same order
    assert "adaptive execution on for this input's size" in cluster.finished.stdout
    assert cluster_report["spark_application_id"].startswith("app-")
    assert local_report["spark_application_id"].startswith("local-")
    assert cluster_report["counts"] == local_report["counts"]
    assert cluster_report["findings_by_rule"] == local_report["findings_by_rule"]
    assert cluster_report["alerts"] == local_report["alerts"] > 0
    for table in OUTPUT_TABLES:
        local_rows = read_published(spark, str(local_run), table, date.fromisoformat(RUN_DATE))
        cluster_rows = read_published(spark, str(cluster_run), table, date.fromisoformat(RUN_DATE))
        assert_df_equality(local_rows, cluster_rows)


def test_the_cluster_run_copied_its_report_to_s3(cluster_run: Path, moto_server: str) -> None:
    # GIVEN the run configured to copy its report to S3: boto3 came from packages.zip on the
    # cluster's driver
    url = f"s3://{REPORT_BUCKET}/cluster/run_date={RUN_DATE}/report.json"
    # THEN the copy is the published report
    copied = json.loads(s3.read_text(report_client(moto_server), url))
    assert copied == json.loads((published(cluster_run, "reports") / "report.json").read_text())


def test_without_the_zip_the_same_submit_fails(cluster: ClusterRun) -> None:
    # GIVEN the same submit command without --py-files packages.zip
    command = cluster.submission.command(date.fromisoformat(RUN_DATE))
    at = command.index("--py-files")
    del command[at : at + 2]

    # WHEN it is submitted to the cluster
    finished = run_bounded(command, cluster.directory, SUBMIT_SECONDS)

    # THEN the driver cannot import the job's modules (spark-submit relays its stderr on stdout)
    assert finished.returncode != 0
    assert "ModuleNotFoundError: No module named 'dependencies'" in finished.stdout


def test_a_setting_the_submitted_session_lacks_is_named(cluster: ClusterRun) -> None:
    # GIVEN the job spark-submitted with --driver-memory 1g, its config (the bundled defaults)
    # asking for 8g
    finished = cluster.finished
    # THEN the run's log (the console, on stdout) says so, with the option that would apply
    # it, instead of ignoring it
    assert (
        "config setting spark[spark.driver.memory] is not applied: "
        "the session spark-submit started has another value (pass --conf spark.driver.memory=8g "
        "to spark-submit)"
    ) in finished.stdout
