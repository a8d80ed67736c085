"""Fencing (dependencies/fence.py): a run that lost the lock of its S3 output commits nothing
more. On the suite's moto server: the job's check before each commit, a paused holder whose
lock was taken over, and ``python -m dependencies.submit`` ending its spark-submit once its
heartbeat finds the lock gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, submit_command
from pyspark.sql import SparkSession
from test_publish import RUN_DATE, assert_published, commits, outputs

from dependencies.exit_codes import EXIT_LOCK_BUSY, EXIT_OK
from dependencies.fence import LOCK_TOKEN_SETTING, LOCK_URL_SETTING, NO_FENCE, Fence, LockLost
from dependencies.publish import ORDER, publish, stage_outputs, staging_directory
from dependencies.submit import LockBusy, job_fence

LOCK_KEY = "out/_lock.json"


def hold(client: Any, bucket: str, token: str) -> None:
    """Write the lock object as the run with ``token`` holds it."""
    record = {"owner": f"host:{token}", "run": "2026-11-15..2026-11-15", "token": token}
    client.put_object(Bucket=bucket, Key=LOCK_KEY, Body=json.dumps(record))


def fence_of(moto_aws_config: dict[str, Any], bucket: str, token: str) -> Fence:
    """The fence of the run with ``token``, as the job builds it from its settings."""
    settings = {LOCK_URL_SETTING: f"s3://{bucket}/{LOCK_KEY}", LOCK_TOKEN_SETTING: token}
    return Fence.from_settings(settings, moto_aws_config)


def test_the_check_passes_only_while_the_run_holds_its_lock(
    moto_aws_config: dict[str, Any], client: Any, bucket: str
) -> None:
    # GIVEN run A holding the lock
    hold(client, bucket, "A")
    fence = fence_of(moto_aws_config, bucket, "A")
    # THEN A's check passes
    fence.check("committing alerts")
    assert fence.holds()
    # WHEN run B takes the lock over THEN A's check stops it, saying so
    hold(client, bucket, "B")
    with pytest.raises(LockLost) as lost:
        fence.check("committing alerts")
    assert str(lost.value) == (
        f"lost the lock s3://{bucket}/{LOCK_KEY} to another run before committing alerts: "
        "this run commits nothing more"
    )
    assert not fence.holds()
    # WHEN the lock object is gone THEN A does not hold it either
    client.delete_object(Bucket=bucket, Key=LOCK_KEY)
    assert not fence.holds()
    # AND a run told of no lock (a local output) has nothing to check
    assert Fence.from_settings({}, moto_aws_config) is NO_FENCE
    NO_FENCE.check("committing alerts")


def test_a_paused_holder_commits_nothing_after_the_takeover(
    spark: SparkSession,
    tmp_path: Path,
    moto_aws_config: dict[str, Any],
    client: Any,
    bucket: str,
) -> None:
    # GIVEN run A holding the lock, its outputs (v1) staged, then paused before publishing
    output = tmp_path / "output"
    hold(client, bucket, "A")
    fence_a = fence_of(moto_aws_config, bucket, "A")
    with staging_directory(spark, str(output), RUN_DATE, "run-a", fence_a) as staging_a:
        staged_a = stage_outputs(outputs(spark, "v1"), staging_a)
        # WHEN run B takes the lock over and publishes the date (v2)
        hold(client, bucket, "B")
        fence_b = fence_of(moto_aws_config, bucket, "B")
        with staging_directory(spark, str(output), RUN_DATE, "run-b", fence_b) as staging_b:
            staged_b = stage_outputs(outputs(spark, "v2"), staging_b)
            publish(spark, staging_b, staged_b, {"version": "v2"}, str(output), RUN_DATE, fence_b)
        history = {table: commits(spark, output, table) for table in ORDER}
        # ... and A resumes and publishes
        with pytest.raises(LockLost, match="before removing the date's report"):
            publish(spark, staging_a, staged_a, {"version": "v1"}, str(output), RUN_DATE, fence_a)
    # THEN the date holds only B's rows and report, and A added no commit to any table
    assert_published(spark, output, "v2")
    assert {table: commits(spark, output, table) for table in ORDER} == history


def test_a_holder_losing_its_lock_mid_publish_stops_before_the_next_commit(
    spark: SparkSession,
    tmp_path: Path,
    moto_aws_config: dict[str, Any],
    client: Any,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN run A holding the lock, publishing v1, whose lock is taken over by B right after
    # A's alerts commit
    output = tmp_path / "output"
    hold(client, bucket, "A")
    from dependencies import publish as publishing

    real_commit = publishing.commit_table

    def commit_then_lose(frame: Any, output_path: str, table: str, run_date: date) -> None:
        real_commit(frame, output_path, table, run_date)
        if table == "alerts":
            hold(client, bucket, "B")

    monkeypatch.setattr(publishing, "commit_table", commit_then_lose)
    fence_a = fence_of(moto_aws_config, bucket, "A")
    # WHEN A publishes
    with staging_directory(spark, str(output), RUN_DATE, "run-a", fence_a) as staging:
        staged = stage_outputs(outputs(spark, "v1"), staging)
        with pytest.raises(LockLost, match="before committing findings"):
            publish(spark, staging, staged, {"version": "v1"}, str(output), RUN_DATE, fence_a)
    # THEN it committed nothing after the alerts: no other table, no report; and it left the
    # date's staging to the new holder
    assert commits(spark, output, "alerts") == ["WRITE"]
    assert not (output / "findings").exists()
    assert not (output / "reports").exists()
    assert (output / "_staging").exists()


FAKE_SPARK_SUBMIT = '''#!{python}
"""A fake spark-submit: records the lock token its properties file names, then works until
ended."""
import os, sys, time
marker = os.environ["MARKER"]
properties = open(sys.argv[sys.argv.index("--properties-file") + 1]).read().splitlines()
token = [p.split("=", 1)[1] for p in properties if p.startswith("{token_setting}=")]
with open(marker + ".started", "w") as f:
    f.write(token[0] if token else "")
time.sleep(float(os.environ.get("WORK_SECONDS", "0")))
open(marker + ".finished", "w").close()
'''


def start_submit(
    tmp_path: Path, config: Path, name: str, work_seconds: float, lock_wait: float
) -> subprocess.Popen:
    """``python -m dependencies.submit`` of the S3 output, with a fake spark-submit that
    works ``work_seconds`` and an S3 lock whose TTL is 2 s."""
    fake = tmp_path / f"spark-submit-{name}"
    fake.write_text(
        FAKE_SPARK_SUBMIT.format(python=sys.executable, token_setting=LOCK_TOKEN_SETTING),
        encoding="utf-8",
    )
    fake.chmod(0o755)
    command = submit_command(
        str(fake),
        config,
        tmp_path / "packages.zip",
        tmp_path / f"locks-{name}",
        lock_wait,
        ["2026-11-15"],
        "--lock-ttl",
        "2",
    )
    environment = {
        **os.environ,
        "MARKER": str(tmp_path / name),
        "WORK_SECONDS": str(work_seconds),
    }
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.1)


def test_a_submission_paused_past_the_ttl_ends_its_run_once_the_lock_is_taken_over(
    tmp_path: Path,
    write_config: Any,
    moto_aws_config: dict[str, Any],
    client: Any,
    bucket: str,
) -> None:
    # GIVEN submission A of an S3 output, its spark-submit at work, and A's own process
    # paused (a suspended VM, a long GC) past the lock's TTL
    config = write_config({"output": {"path": f"s3://{bucket}/out"}, "aws": moto_aws_config})
    holder = start_submit(tmp_path, config, "a", work_seconds=120, lock_wait=0)
    wait_for(tmp_path / "a.started")
    token_a = json.loads(client.get_object(Bucket=bucket, Key=LOCK_KEY)["Body"].read())["token"]
    assert (tmp_path / "a.started").read_text() == token_a  # the job is told its lock
    os.kill(holder.pid, signal.SIGSTOP)
    try:
        # WHEN submission B waits for the lock: it sees A's lock unchanged for a TTL and
        # takes it over, runs and ends
        contender = start_submit(tmp_path, config, "b", work_seconds=0, lock_wait=60)
        _, contender_err = contender.communicate(timeout=120)
        assert contender.returncode == EXIT_OK, contender_err
        assert (tmp_path / "b.finished").exists()
        assert (tmp_path / "b.started").read_text() != token_a
    finally:
        os.kill(holder.pid, signal.SIGCONT)
    # ... and A resumes
    _, holder_err = holder.communicate(timeout=120)
    # THEN A's heartbeat found the lock gone: A ended its spark-submit before it finished,
    # and exits "lock busy"
    assert holder.returncode == EXIT_LOCK_BUSY, holder_err
    assert "lost the lock" in holder_err
    assert not (tmp_path / "a.finished").exists()


def test_a_run_outside_make_submit_takes_the_lock_of_its_s3_output(
    moto_aws_config: dict[str, Any], client: Any, bucket: str
) -> None:
    # GIVEN a DEBUG=1 or plain spark-submit run (no lock named in its settings) of an S3
    # output nobody holds
    config = {"output": {"path": f"s3://{bucket}/out"}, "aws": moto_aws_config}
    # WHEN it runs
    with job_fence(config, RUN_DATE, {}) as fence:
        # THEN it holds the output's lock, and its fence checks that lock
        record = json.loads(client.get_object(Bucket=bucket, Key=LOCK_KEY)["Body"].read())
        assert fence.token == record["token"]
        assert record["run"] == f"{RUN_DATE}..{RUN_DATE}"
        fence.check("committing alerts")
        # AND a second such run of the output is busy
        with (
            pytest.raises(LockBusy, match="is held by"),
            job_fence(config, RUN_DATE, {}),
        ):
            pytest.fail("two runs held the lock")
    # THEN the lock is released when the run ends
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=LOCK_KEY)


def test_a_run_under_make_submit_uses_the_lock_it_is_told_of(
    moto_aws_config: dict[str, Any], client: Any, bucket: str
) -> None:
    # GIVEN make submit holding the lock for the run, and telling it so
    hold(client, bucket, "S")
    settings = {LOCK_URL_SETTING: f"s3://{bucket}/{LOCK_KEY}", LOCK_TOKEN_SETTING: "S"}
    config = {"output": {"path": f"s3://{bucket}/out"}, "aws": moto_aws_config}
    # WHEN the job runs THEN its fence is that lock's, and it takes no lock of its own
    with job_fence(config, RUN_DATE, settings) as fence:
        assert (fence.url, fence.token) == (settings[LOCK_URL_SETTING], "S")
        fence.check("committing alerts")
    assert json.loads(client.get_object(Bucket=bucket, Key=LOCK_KEY)["Body"].read())["token"] == "S"
    # AND a run of a local output has no lock to check
    with job_fence({"output": {"path": "/data/out"}, "aws": {}}, RUN_DATE, {}) as fence:
        assert fence is NO_FENCE
