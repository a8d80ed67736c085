"""dependencies/submit.py, behind make submit and make backfill: the output lock, the exit codes
that reach cron, and a backfill that stops at the first failure with a summary."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, stop_process, submit_command

from dependencies.exit_codes import (
    EXIT_BAD_CONFIG,
    EXIT_INPUT_NOT_READY,
    EXIT_LOCK_BUSY,
    EXIT_OK,
)
from dependencies.submit import Submission, lock_path, summary

SPARK_SUBMIT = str(Path(sys.executable).parent / "spark-submit")


def submit(
    packages_zip: Path, config: Path, lock_dir: Path, lock_wait: float, *dates: str
) -> subprocess.CompletedProcess:
    """Run dependencies/submit.py as make does, for one date or a range."""
    command = submit_command(
        SPARK_SUBMIT,
        config,
        packages_zip,
        lock_dir,
        lock_wait,
        dates,
        "--submit-args",
        "--driver-memory 1g",
    )
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=900, check=False
    )


@pytest.fixture
def hold_lock(tmp_path: Path) -> Iterator[Any]:
    """Start util-linux ``flock LOCKFILE sleep SECONDS`` (another run holding the lock), and
    return once it holds it."""
    holders: list[subprocess.Popen] = []

    def hold(lock: Path, seconds: float) -> subprocess.Popen:
        lock.parent.mkdir(parents=True, exist_ok=True)
        holder = subprocess.Popen(["flock", str(lock), "sleep", str(seconds)])
        holders.append(holder)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock.open("a") as probe:
                try:
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(probe, fcntl.LOCK_UN)
                except BlockingIOError:
                    return holder
            time.sleep(0.05)
        pytest.fail("flock did not take the lock")

    yield hold
    for holder in holders:
        stop_process(holder)


def test_lock_file_is_one_per_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN one output spelled three ways, and another output
    monkeypatch.chdir(tmp_path)
    same = [
        lock_path(p, "/locks") for p in ("out", str(tmp_path / "out"), f"file://{tmp_path}/out/")
    ]
    # THEN the spellings share a lock and the other output has its own
    assert len(set(same)) == 1
    assert (
        lock_path("s3a://bucket/out", "/locks")
        == lock_path("s3a://bucket/out/", "/locks")
        != same[0]
    )
    assert same[0].parent == Path("/locks")


def test_spark_submit_command(tmp_path: Path) -> None:
    # GIVEN a local config and an S3 config
    local = Submission(
        "spark-submit",
        "spark://h:7077",
        "client",
        "packages.zip",
        "conf/job_config.json",
        ("--x",),
        spark_config=(("spark.driver.memory", "2g"),),
    )
    remote = Submission("spark-submit", "yarn", "cluster", "packages.zip", "s3://b/job_config.json")
    # THEN the local one travels with --files and the S3 one is read by the job itself
    command = local.command(date(2026, 11, 15), "/tmp/run.properties")
    assert command[:5] == ["spark-submit", "--master", "spark://h:7077", "--deploy-mode", "client"]
    assert command[5:7] == ["--py-files", str(Path("packages.zip").resolve())]
    assert command[7:9] == ["--files", str(Path("conf/job_config.json").resolve())]
    # THEN the config's Spark settings start the session from a properties file (the
    # cluster's defaults still loaded), before the caller's own options
    assert command[9:13] == [
        "--properties-file",
        "/tmp/run.properties",
        "--load-spark-defaults",
        "--x",
    ]
    assert command[13:] == [str(REPO / "jobs" / "datalake_job.py"), "--run-date", "2026-11-15"]
    with pytest.raises(ValueError, match="need a properties file"):
        local.command(date(2026, 11, 15))
    assert "--files" not in remote.command(date(2026, 11, 15))
    assert remote.command(date(2026, 11, 15))[-4:] == [
        "--run-date",
        "2026-11-15",
        "--config",
        "s3://b/job_config.json",
    ]


def test_job_args_follow_the_run_date() -> None:
    # GIVEN a submission asked for a full refresh of the readings' ledger (make FULL_REFRESH=1)
    submission = Submission(
        "spark-submit",
        "yarn",
        "client",
        "packages.zip",
        "conf/job_config.json",
        job_args=("--full-refresh",),
    )
    # THEN every date's job gets it
    assert submission.command(date(2026, 11, 15))[-3:] == [
        "--run-date",
        "2026-11-15",
        "--full-refresh",
    ]


def test_summary_lists_every_date() -> None:
    # GIVEN a backfill of four dates where the second run was not ready
    dates = [date(2026, 11, d) for d in (1, 2, 3, 4)]
    # THEN the summary says ok, its failure, and what was not run
    assert summary(dates, [EXIT_OK, EXIT_INPUT_NOT_READY]) == [
        "  2026-11-01  ok",
        "  2026-11-02  input not ready (exit 4)",
        "  2026-11-03  not run",
        "  2026-11-04  not run",
        "datalake submit: stopped at 2026-11-02: 1 ok, 1 failed, 2 not run",
    ]
    assert summary(dates[:1], [EXIT_OK])[-1] == "datalake submit: all 1 run dates ok"


def test_a_config_not_named_for_files_is_refused_before_spark(
    packages_zip: Path, write_config: Any, tmp_path: Path
) -> None:
    # GIVEN a valid config whose name the job would not find in SparkFiles
    config = write_config(name="settings.json")
    # WHEN it is submitted THEN it stops as a bad config, saying why
    result = submit(packages_zip, config, tmp_path / "locks", 0, "2026-11-15")
    assert result.returncode == EXIT_BAD_CONFIG
    assert "name it *config.json" in result.stderr


def test_a_second_run_of_the_same_output_exits_lock_busy(
    packages_zip: Path, write_config: Any, tmp_path: Path, hold_lock: Any
) -> None:
    # GIVEN a run of the same output path in progress (it holds the output's lock)
    config = write_config()
    lock = lock_path(str(tmp_path / "output"), str(tmp_path / "locks"))
    hold_lock(lock, 120)

    # WHEN a second run is submitted without waiting
    result = submit(packages_zip, config, tmp_path / "locks", 0, "2026-11-15")

    # THEN it exits "lock busy" at once, and writes nothing
    assert result.returncode == EXIT_LOCK_BUSY
    assert f"lock busy: another run writes {tmp_path / 'output'}" in result.stderr
    assert "spark-submit" not in result.stdout
    assert not (tmp_path / "output").exists()


def test_backfill_waits_for_the_lock_then_stops_at_the_first_failure(
    packages_zip: Path, write_config: Any, tmp_path: Path, hold_lock: Any
) -> None:
    # GIVEN input without completion markers (every run will exit "input not ready"), and a
    # run of the same output that releases its lock after a few seconds
    config = write_config({"input": {"require_success_marker": True}})
    holder = hold_lock(lock_path(str(tmp_path / "output"), str(tmp_path / "locks")), 3)

    # WHEN a three-day backfill is submitted, willing to wait for the lock
    result = submit(packages_zip, config, tmp_path / "locks", 300, "2026-11-14", "2026-11-16")

    # THEN it ran after the holder ended, stopped after the first date, reported the job's exit
    # code from spark-submit, and summed up
    assert holder.poll() == 0
    assert result.returncode == EXIT_INPUT_NOT_READY, result.stderr[-3000:]
    # (spark-submit sends the Python driver's stderr to its own stdout)
    assert "datalake: input not ready: no _SUCCESS marker yet" in result.stdout
    assert result.stdout.count("datalake submit: 2026-11-") == 1
    assert result.stdout.splitlines()[-4:] == [
        "  2026-11-14  input not ready (exit 4)",
        "  2026-11-15  not run",
        "  2026-11-16  not run",
        "datalake submit: stopped at 2026-11-14: 0 ok, 1 failed, 2 not run",
    ]
    assert os.path.exists(tmp_path / "locks")
    assert not (tmp_path / "output").exists()


FAKE_SPARK_SUBMIT = """#!{python}
import json, os, stat, sys
arguments = sys.argv[1:]
properties = arguments[arguments.index("--properties-file") + 1]
with open(os.environ["RECORD"], "w") as record:
    json.dump({{
        "argv": arguments,
        "properties": open(properties).read(),
        "mode": stat.S_IMODE(os.stat(properties).st_mode),
        "path": properties,
    }}, record)
"""


def test_a_secret_in_the_config_reaches_spark_submit_in_a_private_file_only(
    tmp_path: Path, packages_zip: Path
) -> None:
    # GIVEN a config whose spark section holds S3 keys, and a spark-submit that records
    # its command line and the properties file it is given
    secret, access = "s3cr3t-in-the-config", "AKIA-IN-THE-CONFIG"
    config = tmp_path / "job_config.json"
    config.write_text(
        json.dumps(
            {
                "input": {"path": str(tmp_path / "in")},
                "output": {"path": str(tmp_path / "out")},
                "spark": {
                    "spark.hadoop.fs.s3a.secret.key": secret,
                    "spark.hadoop.fs.s3a.access.key": access,
                    "spark.driver.memory": "1g",
                },
            }
        ),
        encoding="utf-8",
    )
    fake = tmp_path / "spark-submit"
    fake.write_text(FAKE_SPARK_SUBMIT.format(python=sys.executable), encoding="utf-8")
    fake.chmod(0o755)
    record = tmp_path / "record.json"
    # ... and the operator's own submit arguments carrying a token
    token = "token-on-the-command-line"
    command = submit_command(
        str(fake),
        config,
        packages_zip,
        tmp_path / "locks",
        0,
        ["2026-11-15"],
        "--submit-args",
        f"--conf spark.hadoop.fs.s3a.session.token={token}",
    )
    # WHEN the run is submitted
    finished = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "RECORD": str(record)},
    )
    assert finished.returncode == EXIT_OK, finished.stderr
    recorded = json.loads(record.read_text(encoding="utf-8"))
    # THEN no argument of spark-submit holds the config's keys: a file only its owner
    # reads does, and it is gone after the run
    assert not any(secret in a or access in a for a in recorded["argv"])
    assert "--load-spark-defaults" in recorded["argv"]
    assert f"spark.hadoop.fs.s3a.secret.key={secret}" in recorded["properties"].splitlines()
    assert recorded["mode"] == 0o600
    assert not Path(recorded["path"]).exists()
    # AND the printed command names the token's setting but masks its value
    printed = finished.stdout + finished.stderr
    assert "spark.hadoop.fs.s3a.session.token=***" in printed
    assert not any(value in printed for value in (secret, access, token))
