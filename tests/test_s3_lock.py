"""The run lock of an S3 output (dependencies/submit.py): the object ``<output>/_lock.json``,
taken with conditional puts on the suite's moto server, renewed by a heartbeat, taken over when
stale, and what ``python -m dependencies.submit`` does with it."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import REPO, submit_command

from dependencies import s3, submit
from dependencies.exit_codes import EXIT_FAILED, EXIT_LOCK_BUSY, EXIT_OK
from dependencies.fence import LOCK_TOKEN_SETTING, LOCK_URL_SETTING
from dependencies.submit import LOCK_TTL_SECONDS, LockBusy, Sightings, s3_output_lock

LOCK_KEY = "out/_lock.json"


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiting runs look at the lock every 0.1 s instead of every second."""
    monkeypatch.setattr(submit, "LOCK_POLL_SECONDS", 0.1)


def read_lock(client: Any, bucket: str) -> tuple[dict[str, str], str]:
    """The lock object's record and ETag."""
    found = client.get_object(Bucket=bucket, Key=LOCK_KEY)
    return json.loads(found["Body"].read()), found["ETag"]


def lock_exists(client: Any, bucket: str) -> bool:
    """Whether the lock object is there."""
    listing = client.list_objects_v2(Bucket=bucket, Prefix=LOCK_KEY)
    return any(entry["Key"] == LOCK_KEY for entry in listing.get("Contents", []))


def put_lock(client: Any, bucket: str, owner: str, expires_in: timedelta) -> str:
    """Write a lock record of another run directly (no condition); its ETag."""
    now = datetime.now(UTC)
    record = {
        "owner": owner,
        "run": "2026-11-01..2026-11-02",
        "acquired_at": submit.utc_text(now - timedelta(hours=1)),
        "expires_at": submit.utc_text(now + expires_in),
    }
    return client.put_object(Bucket=bucket, Key=LOCK_KEY, Body=json.dumps(record))["ETag"]


def instant(text: str) -> datetime:
    """An ``expires_at`` / ``acquired_at`` of a record as a datetime."""
    return datetime.fromisoformat(text)


def test_moto_honours_conditional_writes(client: Any, bucket: str) -> None:
    # GIVEN an object
    first = client.put_object(Bucket=bucket, Key="cond", Body=b"1")["ETag"]
    # WHEN it is created again with If-None-Match: * THEN S3 answers 412
    with pytest.raises(ClientError) as created:
        client.put_object(Bucket=bucket, Key="cond", Body=b"2", IfNoneMatch="*")
    assert created.value.response["Error"]["Code"] == "PreconditionFailed"
    # WHEN it is replaced / deleted with an ETag it no longer has THEN both answer 412
    client.put_object(Bucket=bucket, Key="cond", Body=b"3", IfMatch=first)
    with pytest.raises(ClientError) as replaced:
        client.put_object(Bucket=bucket, Key="cond", Body=b"4", IfMatch=first)
    assert replaced.value.response["Error"]["Code"] == "PreconditionFailed"
    with pytest.raises(ClientError) as deleted:
        client.delete_object(Bucket=bucket, Key="cond", IfMatch=first)
    assert deleted.value.response["Error"]["Code"] == "PreconditionFailed"
    assert client.get_object(Bucket=bucket, Key="cond")["Body"].read() == b"3"


def test_acquire_creates_the_lock_object_and_release_deletes_it(
    moto_aws_config: dict[str, Any], client: Any, bucket: str
) -> None:
    # GIVEN an S3 output with no lock object
    output = f"s3://{bucket}/out/"
    # WHEN a run takes its lock
    with s3_output_lock(moto_aws_config, output, 0, "host-a:11", "2026-11-14..2026-11-16") as held:
        # THEN the lock object names the run and a token of its own, which the job is told
        # with the lock's URL, and expires one TTL after it was taken
        record, _ = read_lock(client, bucket)
        assert held.settings == {
            LOCK_URL_SETTING: f"s3://{bucket}/{LOCK_KEY}",
            LOCK_TOKEN_SETTING: record["token"],
        }
        assert len(record["token"]) == 32
        assert record["owner"] == "host-a:11"
        assert record["run"] == "2026-11-14..2026-11-16"
        held_for = instant(record["expires_at"]) - instant(record["acquired_at"])
        assert abs(held_for.total_seconds() - LOCK_TTL_SECONDS) < 5
        assert instant(record["expires_at"]) > datetime.now(UTC)
    # THEN releasing it deletes the object
    assert not lock_exists(client, bucket)


def test_a_second_run_waits_then_is_busy_naming_the_holder(
    moto_aws_config: dict[str, Any], client: Any, bucket: str, fast_polls: None
) -> None:
    # GIVEN a run holding the lock of an output
    output = f"s3://{bucket}/out"
    with s3_output_lock(moto_aws_config, output, 0, "host-a:11", "2026-11-15..2026-11-15"):
        record, etag = read_lock(client, bucket)
        # WHEN a second run asks for it, willing to wait half a second
        started = time.monotonic()
        with (
            pytest.raises(LockBusy) as busy,
            s3_output_lock(moto_aws_config, output, 0.5, "host-b:22", "2026-11-16..2026-11-16"),
        ):
            pytest.fail("the second run got the lock")
        # THEN it gave up after the wait, saying who holds the lock, and left it alone
        assert time.monotonic() - started >= 0.5
        assert re.fullmatch(
            rf"s3://{bucket}/{LOCK_KEY} is held by host-a:11, run dates 2026-11-15\.\.2026-11-15 "
            rf"\(unchanged for [0-9] s here; stale after {LOCK_TTL_SECONDS:g} s\)",
            str(busy.value),
        )
        assert record["owner"] == "host-a:11"
        assert read_lock(client, bucket)[1] == etag


def test_a_waiting_run_gets_the_lock_once_the_holder_releases_it(
    moto_aws_config: dict[str, Any], client: Any, bucket: str, fast_polls: None
) -> None:
    # GIVEN a run holding the lock, which releases it after a second
    output = f"s3://{bucket}/out"
    taken = threading.Event()

    def first_run() -> None:
        with s3_output_lock(moto_aws_config, output, 0, "host-a:11", "2026-11-15..2026-11-15"):
            taken.set()
            time.sleep(1)

    holder = threading.Thread(target=first_run)
    holder.start()
    assert taken.wait(30)
    # WHEN a second run asks for it, willing to wait
    with s3_output_lock(moto_aws_config, output, 30, "host-b:22", "2026-11-16..2026-11-16"):
        # THEN it holds it once the first run has ended
        assert not holder.is_alive()
        assert read_lock(client, bucket)[0]["owner"] == "host-b:22"
    holder.join()


def test_a_stale_lock_is_taken_over(
    moto_aws_config: dict[str, Any], client: Any, bucket: str, fast_polls: None
) -> None:
    # GIVEN the lock object of a run that died (it is not renewed any more)
    stale_etag = put_lock(client, bucket, "dead-host:99", timedelta(minutes=10))
    # WHEN a run asks for the lock, willing to wait longer than the lock's TTL (0.5 s)
    started = time.monotonic()
    with s3_output_lock(
        moto_aws_config,
        f"s3://{bucket}/out",
        10,
        "host-b:22",
        "2026-11-16..2026-11-16",
        ttl_seconds=0.5,
    ):
        # THEN once it has seen the object unchanged for a TTL on its own clock, it took it
        # over: the object is now this run's
        assert time.monotonic() - started >= 0.5
        record, etag = read_lock(client, bucket)
        assert etag != stale_etag
        assert record["owner"] == "host-b:22"
        assert record["run"] == "2026-11-16..2026-11-16"
        assert instant(record["expires_at"]) > datetime.now(UTC)
    # THEN it released it at the end
    assert not lock_exists(client, bucket)


class RivalTakesOverFirst:
    """An S3 client through which another run takes the stale lock over right after this run
    has read it (so this run's takeover comes second, with the stale ETag)."""

    def __init__(self, client: Any, rival: Callable[[str], str]) -> None:
        self.client = client
        self.rival = rival
        self.rival_etag: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def get_object(self, **kwargs: Any) -> Any:
        found = self.client.get_object(**kwargs)
        if self.rival_etag is None:
            self.rival_etag = self.rival(found["ETag"])
        return found


def test_of_two_runs_taking_over_a_stale_lock_only_one_wins(
    moto_aws_config: dict[str, Any], client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a lock this host has seen unchanged for longer than its TTL (stale), and a rival
    # run that takes it over (If-Match the stale ETag) just after this run has read it
    stale_etag = put_lock(client, bucket, "dead-host:99", timedelta(minutes=-1))
    sightings = Sightings(None)
    sightings.seen = {"etag": stale_etag, "since": time.time() - 100}

    def rival(stale_etag: str) -> str:
        record = {
            "owner": "rival-host:33",
            "run": "2026-11-17..2026-11-17",
            "acquired_at": submit.utc_text(datetime.now(UTC)),
            "expires_at": submit.utc_text(datetime.now(UTC) + timedelta(minutes=15)),
        }
        return client.put_object(
            Bucket=bucket, Key=LOCK_KEY, Body=json.dumps(record), IfMatch=stale_etag
        )["ETag"]

    racing = RivalTakesOverFirst(client, rival)
    monkeypatch.setattr(s3, "client", lambda aws_config, service="s3": racing)
    # WHEN this run takes the lock over too, with the ETag it read
    with (
        pytest.raises(LockBusy) as busy,
        s3_output_lock(
            moto_aws_config,
            f"s3://{bucket}/out",
            0,
            "host-b:22",
            "2026-11-16..2026-11-16",
            ttl_seconds=10,
            sightings=sightings,
        ),
    ):
        pytest.fail("both runs took the stale lock over")
    # THEN the rival won (its conditional put succeeded), this run is busy naming it, and the
    # lock object is the rival's
    assert racing.rival_etag is not None
    assert "is held by rival-host:33, run dates 2026-11-17..2026-11-17" in str(busy.value)
    record, etag = read_lock(client, bucket)
    assert (record["owner"], etag) == ("rival-host:33", racing.rival_etag)


def test_the_heartbeat_renews_the_expiry(
    moto_aws_config: dict[str, Any], client: Any, bucket: str
) -> None:
    # GIVEN a run holding the lock with a TTL of 0.6 s (renewed every 0.2 s)
    output = f"s3://{bucket}/out"
    with s3_output_lock(
        moto_aws_config, output, 0, "host-a:11", "2026-11-15..2026-11-15", ttl_seconds=0.6
    ):
        first, first_etag = read_lock(client, bucket)
        # WHEN more than a TTL passes
        time.sleep(1.2)
        # THEN the object was rewritten with a later expiry that has not passed yet
        renewed, renewed_etag = read_lock(client, bucket)
        assert renewed_etag != first_etag
        assert instant(renewed["expires_at"]) > instant(first["expires_at"])
        assert instant(renewed["expires_at"]) > datetime.now(UTC)
        assert (renewed["owner"], renewed["acquired_at"]) == (first["owner"], first["acquired_at"])
        # THEN another run, waiting longer than the TTL, still finds it held: it never sees
        # the same object for a whole TTL
        with (
            pytest.raises(LockBusy),
            s3_output_lock(
                moto_aws_config,
                output,
                1.5,
                "host-b:22",
                "2026-11-16..2026-11-16",
                ttl_seconds=0.6,
            ),
        ):
            pytest.fail("the second run took over a renewed lock")
    assert not lock_exists(client, bucket)


def test_a_contender_whose_clock_runs_ahead_does_not_take_a_live_lock(
    moto_aws_config: dict[str, Any], client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a live run's lock, last renewed five minutes ago (it expires in ten, by the
    # holder's clock)
    etag = put_lock(client, bucket, "host-a:11", timedelta(minutes=10))
    # ... and a contender whose clock runs 11 minutes ahead (its "now" is past that expiry)
    ahead = timedelta(minutes=11)

    class AheadDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return datetime.now(tz) + ahead

    monkeypatch.setattr(submit, "datetime", AheadDatetime)
    real_time = time.time
    monkeypatch.setattr(submit.time, "time", lambda: real_time() + ahead.total_seconds())
    # WHEN it asks for the lock without waiting
    with (
        pytest.raises(LockBusy),
        s3_output_lock(moto_aws_config, f"s3://{bucket}/out", 0, "host-b:22", "2026-11-16"),
    ):
        pytest.fail("a clock running ahead took a live lock")
    # THEN the holder's lock is untouched
    assert read_lock(client, bucket)[1] == etag


def test_runs_started_apart_judge_staleness_together(
    moto_aws_config: dict[str, Any], client: Any, bucket: str, tmp_path: Path
) -> None:
    # GIVEN a dead run's lock, and this host's sightings kept in a file
    stale_etag = put_lock(client, bucket, "dead-host:99", timedelta(minutes=10))
    seen = tmp_path / "locks" / "out.seen.json"
    output = f"s3://{bucket}/out"
    # WHEN a run (cron, no waiting) first finds it THEN it is busy: not seen stale yet
    with (
        pytest.raises(LockBusy),
        s3_output_lock(moto_aws_config, output, 0, "host-b:22", "2026-11-16", 0.5, Sightings(seen)),
    ):
        pytest.fail("a lock seen for the first time was taken over")
    # WHEN a later run finds the same object, a TTL after the first sighting
    time.sleep(0.6)
    with s3_output_lock(
        moto_aws_config, output, 0, "host-b:23", "2026-11-17", 0.5, Sightings(seen)
    ):
        # THEN it takes it over
        record, etag = read_lock(client, bucket)
        assert etag != stale_etag
        assert record["owner"] == "host-b:23"


def test_a_lock_taken_from_the_run_is_warned_about_and_left_alone(
    moto_aws_config: dict[str, Any], client: Any, bucket: str, capsys: pytest.CaptureFixture
) -> None:
    # GIVEN a run holding the lock with a TTL of 0.6 s
    output = f"s3://{bucket}/out"
    with s3_output_lock(
        moto_aws_config, output, 0, "host-a:11", "2026-11-15..2026-11-15", ttl_seconds=0.6
    ):
        # WHEN another run overwrites the lock object
        rival_etag = put_lock(client, bucket, "rival-host:33", timedelta(minutes=15))
        time.sleep(0.8)
    # THEN the next renewal warned once on stderr, and the release left the rival's lock there
    warnings = capsys.readouterr().err.splitlines()
    lost = (
        f"datalake submit: warning: lost the lock s3://{bucket}/{LOCK_KEY}: another run took "
        "it over; this run stops and commits nothing more"
    )
    assert warnings == [lost]
    record, etag = read_lock(client, bucket)
    assert (record["owner"], etag) == ("rival-host:33", rival_etag)


# --- python -m dependencies.submit with an s3:// output, and a fake spark-submit ---

FAKE_SPARK_SUBMIT = '''#!{python}
"""A fake spark-submit: prints the lock object as it is while it runs."""
import boto3

client = boto3.client("s3", endpoint_url={endpoint!r})
body = client.get_object(Bucket={bucket!r}, Key={key!r})["Body"].read().decode()
print("lock while running:", body, flush=True)
'''


def submit_s3_output(
    tmp_path: Path, write_config: Any, aws_config: dict[str, Any], bucket: str, *dates: str
) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``python -m dependencies.submit`` as make does, for an output ``s3://bucket/out``,
    with a fake spark-submit; the finished process and its pid."""
    fake = tmp_path / "spark-submit"
    fake.write_text(
        FAKE_SPARK_SUBMIT.format(
            python=sys.executable, endpoint=aws_config["endpoint_url"], bucket=bucket, key=LOCK_KEY
        ),
        encoding="utf-8",
    )
    fake.chmod(0o755)
    config = write_config({"output": {"path": f"s3://{bucket}/out"}, "aws": aws_config})
    command = submit_command(
        str(fake), config, tmp_path / "packages.zip", tmp_path / "locks", 0, dates
    )
    with subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), process.pid


def test_submit_of_an_s3_output_held_by_another_run_exits_lock_busy(
    tmp_path: Path, write_config: Any, moto_aws_config: dict[str, Any], client: Any, bucket: str
) -> None:
    # GIVEN a run on another machine holding the lock of the S3 output (not expired)
    etag = put_lock(client, bucket, "other-host:4242", timedelta(minutes=10))

    # WHEN a run of that output is submitted without waiting
    result, _ = submit_s3_output(tmp_path, write_config, moto_aws_config, bucket, "2026-11-15")

    # THEN it exits "lock busy" with one line naming the holder, runs nothing, and leaves the
    # other run's lock alone (no flock file either: only its sighting of the lock is kept)
    assert result.returncode == EXIT_LOCK_BUSY, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == (
        f"datalake submit: lock busy: another run writes s3://{bucket}/out "
        f"(s3://{bucket}/{LOCK_KEY} is held by other-host:4242, run dates 2026-11-01..2026-11-02 "
        f"(unchanged for 0 s here; stale after {LOCK_TTL_SECONDS:g} s))"
    )
    assert "lock while running" not in result.stdout
    assert read_lock(client, bucket)[1] == etag
    assert [p.name.endswith(".seen.json") for p in (tmp_path / "locks").iterdir()] == [True]


def test_submit_of_an_s3_output_holds_the_lock_object_while_spark_submit_runs(
    tmp_path: Path, write_config: Any, moto_aws_config: dict[str, Any], client: Any, bucket: str
) -> None:
    # GIVEN an S3 output nobody holds the lock of
    # WHEN a two-day backfill of it is submitted
    result, pid = submit_s3_output(
        tmp_path, write_config, moto_aws_config, bucket, "2026-11-14", "2026-11-15"
    )

    # THEN spark-submit ran for each date while the lock object named this submission
    assert result.returncode == EXIT_OK, result.stderr
    held = [
        json.loads(line.removeprefix("lock while running: "))
        for line in result.stdout.splitlines()
        if line.startswith("lock while running: ")
    ]
    assert len(held) == 2, result.stdout
    assert {(record["owner"], record["run"]) for record in held} == {
        (f"{socket.gethostname()}:{pid}", "2026-11-14..2026-11-15")
    }
    assert result.stdout.splitlines()[-1] == "datalake submit: all 2 run dates ok"
    # THEN the lock object is gone afterwards, and no flock file was made
    assert not lock_exists(client, bucket)
    assert not (tmp_path / "locks").exists()
    assert result.stderr == ""


def test_submit_of_an_s3_output_in_a_missing_bucket_fails_before_spark_submit(
    tmp_path: Path, write_config: Any, moto_aws_config: dict[str, Any]
) -> None:
    # GIVEN an S3 output in a bucket that does not exist
    missing = f"missing-{uuid.uuid4().hex[:12]}"
    # WHEN a run of it is submitted
    result, _ = submit_s3_output(tmp_path, write_config, moto_aws_config, missing, "2026-11-15")
    # THEN it fails with one line saying why, without running spark-submit
    assert result.returncode == EXIT_FAILED, result.stderr
    why = f"s3://{missing}/{LOCK_KEY}: no such bucket: {missing}"
    assert result.stderr.splitlines() == [
        f"datalake submit: cannot take the lock of s3://{missing}/out: {why}"
    ]
    assert "lock while running" not in result.stdout
