"""One run of the job logs the same events to console, file, driver log and CloudWatch
(moto), pushes its metrics, and a CloudWatch endpoint killed mid-run changes nothing."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from conftest import RUN_DATE, SMALL_SPARK, TEST_DATA
from prometheus_client.parser import text_string_to_metric_families

from dependencies.cloudwatch import logs_client
from dependencies.logging import LOGGER_NAME
from dependencies.publish import read_published
from jobs.datalake_job import EXIT_BAD_INPUT, EXIT_OK, main

SECRET = "SECRET-IN-CONFIG"


@dataclass
class JobRun:
    """What one run of the job left behind."""

    exit_code: int
    console: str
    output: Path
    log_file: Path
    finished_at: float

    @property
    def report(self) -> dict[str, Any]:
        path = self.output / "reports" / f"run_date={RUN_DATE}" / "report.json"
        return json.loads(path.read_text(encoding="utf-8"))


def run_job(
    directory: Path, cloudwatch: dict[str, Any], aws: dict[str, Any], metrics: dict[str, Any]
) -> JobRun:
    """Run ``main`` in-process on the sample data with console (JSON), file, driver log and
    the given CloudWatch, AWS and metrics settings; capture what it writes to the console."""
    directory.mkdir(parents=True)
    config = {
        "input": {"path": str(TEST_DATA), "format": "csv"},
        "output": {"path": str(directory / "output")},
        "spark": {**SMALL_SPARK, "spark.hadoop.fs.s3a.secret.key": SECRET},
        "logging": {
            "console": {"enabled": True, "format": "json"},
            "file": {"enabled": True, "path": str(directory / "logs" / "datalake.jsonl")},
            "spark": {"enabled": True},
            "cloudwatch": {"enabled": True, **cloudwatch},
        },
        "aws": aws,
        "metrics": metrics,
    }
    config_path = directory / "job_config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    console = io.StringIO()
    with redirect_stderr(console), redirect_stdout(io.StringIO()):
        try:
            exit_code = main(["--config", str(config_path), "--run-date", RUN_DATE])
            finished_at = time.monotonic()
        finally:
            close_job_logger()
    return JobRun(
        exit_code,
        console.getvalue(),
        directory / "output",
        directory / "logs" / "datalake.jsonl",
        finished_at,
    )


def close_job_logger() -> None:
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def records(text: str, run_id: str) -> list[dict[str, Any]]:
    """The JSON records of run ``run_id`` in ``text``, in order."""
    parsed = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [record for record in parsed if record["context"]["run_id"] == run_id]


def cloudwatch_messages(client: Any, group: str, stream: str) -> list[str]:
    """Every message of a CloudWatch stream, oldest first."""
    messages, token = [], None
    while True:
        page = client.get_log_events(
            logGroupName=group,
            logStreamName=stream,
            startFromHead=True,
            **({"nextToken": token} if token else {}),
        )
        messages += [event["message"] for event in page["events"]]
        if page["nextForwardToken"] == token:
            return messages
        token = page["nextForwardToken"]


def aws_settings(endpoint_url: str) -> dict[str, str]:
    return {"region": "us-east-1", "endpoint_url": endpoint_url}


@pytest.fixture(scope="module")
def healthy_run(
    spark, moto_server, pushgateway_with_basic_auth, driver_log, tmp_path_factory
) -> dict[str, Any]:
    """One run with every target up: the run, its CloudWatch group, metrics job and driver log.
    It pushes to a Pushgateway behind basic auth, the credentials in the URL's user info."""
    group = f"datalake-job-{uuid.uuid4().hex}"
    job_name = f"datalake-{uuid.uuid4().hex}"
    gateway = pushgateway_with_basic_auth
    run = run_job(
        tmp_path_factory.mktemp("healthy") / "run",
        {"log_group": group, "flush_interval_seconds": 0.2},
        aws_settings(moto_server),
        {"pushgateway_url": gateway.url_with_user_info(gateway.password), "job_name": job_name},
    )
    return {"run": run, "group": group, "job_name": job_name, "driver_log": driver_log}


def assert_password_hidden(password: str, *texts: str) -> None:
    """Neither the password nor its URL-encoded form is in any of ``texts``."""
    for text in texts:
        assert password not in text
        assert urllib.parse.quote(password, safe="") not in text


def test_one_run_writes_the_same_events_to_console_file_driver_log_and_cloudwatch(
    healthy_run, moto_server, pushgateway_with_basic_auth
):
    # GIVEN one run of the job with all four targets enabled
    run: JobRun = healthy_run["run"]
    assert run.exit_code == EXIT_OK
    run_id = run.report["run_id"]

    # WHEN its events are read back from each target (CloudWatch: one stream per run)
    console = records(run.console, run_id)
    written = records(run.log_file.read_text(encoding="utf-8"), run_id)
    driver = records(healthy_run["driver_log"].read_text(encoding="utf-8"), run_id)
    client = logs_client(aws_settings(moto_server) | {"profile": ""}, 5.0)
    stream = f"datalake_job/{RUN_DATE}/{run_id}"
    cloudwatch = records(
        "\n".join(cloudwatch_messages(client, healthy_run["group"], stream)), run_id
    )

    # THEN every target holds the same records, in the same order, from start to finish
    assert console == written == driver == cloudwatch
    messages = [record["message"] for record in console]
    assert messages[0] == "run started"
    assert "stage usage done" in " ".join(messages)
    gateway = pushgateway_with_basic_auth
    assert messages[-2:] == [
        "run finished with exit code 0",
        f"metrics pushed to {gateway.masked_url}",
    ]
    assert {record["context"]["spark_app_id"] for record in console} == {
        run.report["spark_application_id"]
    }
    assert {record["context"]["run_date"] for record in console} == {RUN_DATE}
    # AND without a terminal there is no progress line on the console
    assert "\r" not in run.console
    assert "\x1b[" not in run.console
    # AND the logged config hides the secret in every target
    assert console[0]["fields"]["config"]["spark"]["spark.hadoop.fs.s3a.secret.key"] == "***"
    for text in (
        run.console,
        run.log_file.read_text(encoding="utf-8"),
        healthy_run["driver_log"].read_text(),
    ):
        assert SECRET not in text
    # AND so does everything with the Pushgateway's password in the URL: logs and report
    assert_password_hidden(
        gateway.password,
        run.console,
        run.log_file.read_text(encoding="utf-8"),
        healthy_run["driver_log"].read_text(),
        "\n".join(cloudwatch_messages(client, healthy_run["group"], stream)),
        json.dumps(run.report),
    )
    # AND the report holds the whole config, masked the same way
    logged_config = run.report["parameters"]["config_values"]
    assert logged_config["metrics"]["pushgateway_url"] == gateway.masked_url
    assert logged_config["spark"]["spark.hadoop.fs.s3a.secret.key"] == "***"


def test_one_run_pushes_its_metrics_matching_its_report(healthy_run, pushgateway_with_basic_auth):
    # GIVEN one run of the job with a Pushgateway (behind basic auth) configured
    run: JobRun = healthy_run["run"]
    report = run.report
    gateway = pushgateway_with_basic_auth

    # WHEN the Pushgateway is scraped
    scrape = urllib.request.Request(f"{gateway.url}/metrics", headers=gateway.authorization)
    with urllib.request.urlopen(scrape, timeout=10) as response:
        families = text_string_to_metric_families(response.read().decode("utf-8"))
    samples = {
        (
            sample.name,
            sample.labels.get("table") or sample.labels.get("rule") or sample.labels.get("stage"),
        ): sample.value
        for family in families
        for sample in family.samples
        if sample.labels.get("job") == healthy_run["job_name"]
    }

    # THEN it serves the run's outcome and the report's numbers
    assert samples[("datalake_run_success", None)] == 1
    assert samples[("datalake_alerts", None)] == report["alerts"] > 0
    for table, counts in report["counts"].items():
        for count in ("read", "used", "rejected", "deduplicated", "outside_window"):
            assert samples[(f"datalake_rows_{count}", table)] == counts[count]
    for rule, number in report["findings_by_rule"].items():
        assert samples[("datalake_findings", rule)] == number
    for stage, seconds in report["durations_seconds"].items():
        assert samples[("datalake_stage_duration_seconds", stage)] == seconds


def test_killing_the_cloudwatch_endpoint_mid_run_changes_no_output_or_exit_code(
    spark, healthy_run, start_moto_server: Callable[[], Any], tmp_path
):
    # GIVEN a private moto server that is killed as soon as the run's first events arrive
    server = start_moto_server()
    client = logs_client(aws_settings(server.url) | {"profile": ""}, 2.0)
    group = f"datalake-killed-{uuid.uuid4().hex}"
    killed: dict[str, float] = {}

    def kill_after_first_events() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                arrived = bool(cloudwatch_messages(client, group, "killed-run"))
            except client.exceptions.ResourceNotFoundException:  # not created yet
                arrived = False
            if arrived:
                server.process.kill()
                killed["at"] = time.monotonic()
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=kill_after_first_events, daemon=True)
    watcher.start()

    # WHEN the job runs against it
    run = run_job(
        tmp_path / "run",
        {
            "log_group": group,
            "log_stream": "killed-run",
            "flush_interval_seconds": 0.2,
            "max_retries": 2,
            "retry_base_seconds": 0.05,
            "close_timeout_seconds": 10.0,
        },
        aws_settings(server.url),
        {},
    )
    watcher.join(1)

    # THEN the endpoint died during the run, later events were given up on and reported,
    assert killed["at"] < run.finished_at
    assert "datalake logging: CloudWatch Logs: gave up on" in run.console
    # AND the exit code and every output are those of the healthy run
    healthy: JobRun = healthy_run["run"]
    assert run.exit_code == healthy.exit_code == EXIT_OK
    for table in ("alerts", "findings", "rejects"):
        expected = read_published(spark, str(healthy.output), table, date.fromisoformat(RUN_DATE))
        actual = read_published(spark, str(run.output), table, date.fromisoformat(RUN_DATE))
        assert_df_equality(actual, expected, ignore_row_order=True)
    for key in ("counts", "findings_by_rule", "alerts"):
        assert run.report[key] == healthy.report[key]
    # AND the console and the file still have the whole run
    messages = [record["message"] for record in records(run.console, run.report["run_id"])]
    assert messages[0] == "run started"
    assert messages[-1] == "run finished with exit code 0"
    assert records(run.log_file.read_text(encoding="utf-8"), run.report["run_id"]) == records(
        run.console, run.report["run_id"]
    )


def test_a_failed_run_pushes_its_failure_and_logs_it(
    spark, pushgateway, write_config, tmp_path, capsys
):
    # GIVEN a config whose input directory has no tables, and a Pushgateway
    job_name = f"datalake-{uuid.uuid4().hex}"
    (tmp_path / "empty").mkdir()
    config = write_config(
        {
            "input": {"path": str(tmp_path / "empty"), "format": "csv"},
            "logging": {
                "console": {"enabled": True, "format": "json"},
                "spark": {"enabled": False},
            },
            "metrics": {"pushgateway_url": pushgateway, "job_name": job_name},
        }
    )

    # WHEN the job runs
    try:
        exit_code = main(["--config", str(config), "--run-date", RUN_DATE])
    finally:
        close_job_logger()

    # THEN it exits with the bad-input code, logs the error and the outcome, and the
    # Pushgateway says the run failed
    assert exit_code == EXIT_BAD_INPUT
    logged = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    assert [record["level"] for record in logged if record["message"].startswith("bad input")] == [
        "ERROR"
    ]
    assert [record["message"] for record in logged[-2:]] == [
        f"run finished with exit code {EXIT_BAD_INPUT}",
        f"metrics pushed to {pushgateway}",
    ]
    with urllib.request.urlopen(f"{pushgateway}/metrics", timeout=10) as response:
        families = text_string_to_metric_families(response.read().decode("utf-8"))
    samples = {
        sample.name: sample.value
        for family in families
        for sample in family.samples
        if sample.labels.get("job") == job_name and not sample.labels.get("stage")
    }
    assert samples["datalake_run_success"] == 0
    assert samples["datalake_run_exit_code"] == EXIT_BAD_INPUT
    assert "datalake_last_failure_timestamp_seconds" in samples
    assert "datalake_rows_read" not in samples


def test_wrong_pushgateway_credentials_warn_once_and_keep_the_exit_code(
    spark, pushgateway_with_basic_auth, write_config, tmp_path, capsys, monkeypatch
):
    # GIVEN a run that fails on its input, and a wrong Pushgateway password in the variable the
    # config names
    gateway = pushgateway_with_basic_auth
    wrong = "not-the-Pa55word:/@%"
    monkeypatch.setenv("DATALAKE_TEST_PUSH_USER", gateway.username)
    monkeypatch.setenv("DATALAKE_TEST_PUSH_PASSWORD", wrong)
    (tmp_path / "empty").mkdir()
    log_file = tmp_path / "logs" / "datalake.jsonl"
    config = write_config(
        {
            "input": {"path": str(tmp_path / "empty"), "format": "csv"},
            "logging": {
                "console": {"enabled": True, "format": "text"},
                "file": {"enabled": True, "path": str(log_file)},
                "spark": {"enabled": False},
            },
            "metrics": {
                "pushgateway_url": gateway.url,
                "username_env": "DATALAKE_TEST_PUSH_USER",
                "password_env": "DATALAKE_TEST_PUSH_PASSWORD",
            },
        }
    )

    # WHEN the job runs
    try:
        exit_code = main(["--config", str(config), "--run-date", RUN_DATE])
    finally:
        close_job_logger()

    # THEN its exit code is still that of the bad input, with exactly one warning about the push
    assert exit_code == EXIT_BAD_INPUT
    logged = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    warnings = [record["message"] for record in logged if record["level"] == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0].startswith("metrics not pushed")
    assert "401" in warnings[0]
    # AND the password is nowhere: not on the console, in the log file or in the warning
    captured = capsys.readouterr()
    assert_password_hidden(wrong, captured.err, captured.out, log_file.read_text(encoding="utf-8"))
    # AND the failed run left nothing in the output path (no _staging/)
    output = tmp_path / "output"
    assert not output.exists() or list(output.iterdir()) == []
