"""Submit the job with spark-submit, for cron: one run date, or a backfill over a range.

``make submit`` and ``make backfill`` call this with the Makefile's variables. It validates
the config, takes the lock of the config's output path (so that runs writing the same output
never overlap), runs ``spark-submit --py-files packages.zip --files CONFIG
jobs/datalake_job.py --run-date D`` once per date, stops at the first failure, prints a
summary, and exits with the job's exit code (``EXIT_*`` in dependencies/exit_codes.py).

For a local output the lock is an exclusive flock(2) on
``<lock-dir>/datalake-<hash of the output path>.lock``, held until spark-submit ends (the child
process inherits it). For an ``s3://`` output it is the object ``<output path>/_lock.json``,
created with a conditional put (``If-None-Match: *``) and naming its holder, a token of its own
and an expiry: a heartbeat thread renews it while spark-submit runs (``If-Match`` our ETag),
and the end of the run deletes it. Whether a lock is stale (its holder died or hangs) is
judged on the contender's own clock, never on the holder's: it is stale once the contender
has seen the same object (ETag) unchanged for a whole TTL (the sightings are kept in
``<lock-dir>``, so that runs started apart judge together); it is then taken over, again with
``If-Match``, so that only one of the runs racing for it wins. Either way a second run exits
at once with ``EXIT_LOCK_BUSY``, or first waits up to ``--lock-wait`` seconds for the lock.

Fencing: the job is told the lock's URL and token (``dependencies/fence.py``) and checks it
still holds the lock right before each commit; when a renewal finds the lock taken over, this
process ends spark-submit and exits with ``EXIT_LOCK_BUSY``.

The config's ``spark`` settings reach spark-submit in a properties file only its owner can
read (``--properties-file``, with ``--load-spark-defaults`` so that the cluster's own
``spark-defaults.conf`` still applies), never as ``--conf`` on the command line, where any
local user would read them in the process list; the printed commands mask the values of
secret-looking settings.
"""

from __future__ import annotations

import argparse
import fcntl
import fnmatch
import hashlib
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dependencies import s3
from dependencies.config import CONFIG_GLOB, ConfigError, load_config
from dependencies.exit_codes import (
    EXIT_BAD_CONFIG,
    EXIT_CODE_NAMES,
    EXIT_FAILED,
    EXIT_LOCK_BUSY,
    EXIT_OK,
)
from dependencies.fence import (
    LOCK_TOKEN_SETTING,
    LOCK_URL_SETTING,
    NO_FENCE,
    Fence,
    S3LockObject,
    lock_url,
)
from dependencies.jars import MissingJars, jar_paths, packages
from dependencies.logging import redact

REPO = Path(__file__).resolve().parent.parent
ENTRY_FILE = REPO / "jobs" / "datalake_job.py"
LOCK_POLL_SECONDS = 1.0
LOCK_TTL_SECONDS = 15 * 60.0
# How long spark-submit has to end once asked to (its lock lost), before it is killed.
STOP_SECONDS = 30.0


class LockBusy(RuntimeError):
    """Another run holds the lock of the same output path."""


@dataclass(frozen=True)
class Submission:
    """How to call spark-submit: where it is, the cluster, the job's package and config."""

    spark_submit: str
    master: str
    deploy_mode: str
    package: str
    config: str
    extra_args: tuple[str, ...] = ()
    job_args: tuple[str, ...] = ()
    spark_config: tuple[tuple[str, str], ...] = ()
    jars: tuple[str, ...] = ()

    def command(self, run_date: date, properties_file: str | None = None) -> list[str]:
        """The spark-submit command line of the run for ``run_date``.

        A local config travels with ``--files`` (the job finds it in SparkFiles); an
        ``s3://`` config is passed to the job as ``--config``, which reads it with boto3.
        The config's ``spark`` settings (written to ``properties_file`` by
        :func:`spark_properties`) start the session; ``extra_args``' own ``--conf`` wins
        over them. The ``jars`` (Delta Lake's, S3A's) go to the driver and the executors
        with ``--jars``."""
        if self.spark_config and properties_file is None:
            raise ValueError("the config's spark settings need a properties file")
        properties = (
            ["--properties-file", properties_file, "--load-spark-defaults"]
            if properties_file is not None
            else []
        )
        job_args = ["--run-date", run_date.isoformat(), *self.job_args]
        files: list[str] = []
        if s3.is_s3_url(self.config):
            job_args += ["--config", self.config]
        else:
            files = ["--files", str(Path(self.config).resolve())]
        return [
            self.spark_submit,
            "--master",
            self.master,
            "--deploy-mode",
            self.deploy_mode,
            "--py-files",
            str(Path(self.package).resolve()),
            *files,
            *(["--jars", ",".join(self.jars)] if self.jars else []),
            *properties,
            *self.extra_args,
            str(ENTRY_FILE),
            *job_args,
        ]


def _escaped(text: str, in_key: bool = False) -> str:
    """``text`` as a Java properties file reads it back (backslashes, line breaks, a leading
    blank; in a key, also the separators)."""
    text = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    if in_key:
        for character in " =:#!":
            text = text.replace(character, f"\\{character}")
    return f"\\{text}" if text[:1] in (" ", "\t") else text


@contextmanager
def spark_properties(settings: Sequence[tuple[str, str]]) -> Iterator[str]:
    """A properties file holding ``settings`` that only this user can read (0600), for
    spark-submit's ``--properties-file``; removed when the block ends."""
    descriptor, path = tempfile.mkstemp(prefix="datalake-spark-", suffix=".properties")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.writelines(f"{_escaped(k, in_key=True)}={_escaped(v)}\n" for k, v in settings)
        yield path
    finally:
        Path(path).unlink(missing_ok=True)


def printable(command: Sequence[str]) -> str:
    """``command`` as a shell line, with the values of secret-looking ``key=value``
    arguments (``--conf spark.hadoop.fs.s3a.secret.key=...``) and URL passwords masked."""
    shown = []
    for argument in command:
        key, equals, value = argument.partition("=")
        masked = redact({key: value}).get(key) if equals and not key.startswith("-") else None
        shown.append(f"{key}={masked}" if masked is not None else redact(argument))
    return shlex.join(shown)


def lock_path(output_path: str, lock_dir: str) -> Path:
    """The lock file of ``output_path``: one per output, whatever its spelling
    (a relative local path counts from the working directory, as for the job)."""
    scheme = urlparse(output_path).scheme
    key = (
        output_path.rstrip("/")
        if scheme and scheme != "file"
        else os.path.realpath(output_path.removeprefix("file://"))
    )
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return Path(lock_dir) / f"datalake-{digest}.lock"


@contextmanager
def output_lock(path: Path, wait_seconds: float, holder: str) -> Iterator[int]:
    """Hold an exclusive flock on ``path``; yield its file descriptor (for children to
    inherit). Raise :class:`LockBusy` if it is still taken after ``wait_seconds``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    held_by = path.read_text(encoding="utf-8").strip() or "another process"
                    raise LockBusy(f"{path} is held by {held_by}") from None
                time.sleep(LOCK_POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder}\n".encode(), 0)
        yield fd
    finally:
        os.close(fd)


def utc_text(instant: datetime) -> str:
    """An instant as ISO 8601 UTC text, to the millisecond: ``2026-11-15T02:30:00.000Z``."""
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def lock_body(record: Mapping[str, str], ttl_seconds: float) -> bytes:
    """The lock object's JSON: ``record`` (owner, run, acquired_at) expiring ``ttl_seconds``
    from now."""
    expires_at = utc_text(datetime.now(UTC) + timedelta(seconds=ttl_seconds))
    return json.dumps({**record, "expires_at": expires_at}).encode("utf-8")


class Sightings:
    """When this host first saw the lock object as it is now (its ETag), on this host's own
    clock: kept in ``path`` (when given) across runs, so that a run started by cron after
    another judges with it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.seen: dict[str, Any] = {}

    def _load(self) -> dict[str, Any]:
        if self.path is None:
            return self.seen
        try:
            found = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}

    def unchanged_for(self, etag: str) -> float:
        """Seconds since this host first saw the object with ``etag`` (0 the first time)."""
        seen, now = self._load(), time.time()
        if seen.get("etag") == etag and isinstance(seen.get("since"), (int, float)):
            return max(0.0, now - seen["since"])
        self.seen = {"etag": etag, "since": now}
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.seen), encoding="utf-8")
        return 0.0


@dataclass(frozen=True)
class HeldLock:
    """A lock this run holds: what the job is told of it (``settings``), the descriptors
    spark-submit keeps (a flock's), and ``lost``, set when another run has taken it over."""

    settings: Mapping[str, str] = field(default_factory=dict)
    pass_fds: tuple[int, ...] = ()
    lost: threading.Event = field(default_factory=threading.Event)


class LockHeartbeat(threading.Thread):
    """Renews the lock every third of its TTL while the run holds it; when a renewal finds
    that another run has taken the lock over, warns on stderr and sets ``lost``."""

    def __init__(
        self, lock: S3LockObject, record: Mapping[str, str], etag: str, ttl_seconds: float
    ) -> None:
        super().__init__(name="datalake-lock-heartbeat", daemon=True)
        self.lock = lock
        self.record = record
        self.etag = etag
        self.ttl_seconds = ttl_seconds
        self.stopping = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.ttl_seconds / 3):
            try:
                etag = self.lock.put(lock_body(self.record, self.ttl_seconds), IfMatch=self.etag)
            except s3.AwsError as error:
                warn(f"cannot renew the lock ({error}); trying again")
                continue
            if etag is None:
                warn(
                    f"lost the lock {self.lock.url}: another run took it over; "
                    "this run stops and commits nothing more"
                )
                self.lost.set()
                return
            self.etag = etag

    def stop(self) -> str:
        """Stop renewing; the ETag of the lock object as this run last wrote it."""
        self.stopping.set()
        self.join()
        return self.etag


def warn(message: str) -> None:
    """One warning line of the submission on stderr."""
    print(f"datalake submit: warning: {message}", file=sys.stderr, flush=True)


@contextmanager
def s3_output_lock(
    aws_config: Mapping[str, Any],
    output_path: str,
    wait_seconds: float,
    owner: str,
    run: str,
    ttl_seconds: float = LOCK_TTL_SECONDS,
    sightings: Sightings | None = None,
) -> Iterator[HeldLock]:
    """Hold the lock object ``<output_path>/_lock.json`` (see the module docstring) for
    ``owner`` (``host:pid``) and ``run`` (its dates). Raise :class:`LockBusy` if another run
    still holds it after ``wait_seconds`` (stale: unchanged for ``ttl_seconds`` by
    ``sightings``), :class:`s3.AwsError` if S3 fails."""
    lock = S3LockObject(s3.client(aws_config), lock_url(output_path))
    sightings = sightings or Sightings(None)
    record = {
        "owner": owner,
        "run": run,
        "token": uuid.uuid4().hex,
        "acquired_at": utc_text(datetime.now(UTC)),
    }
    deadline = time.monotonic() + wait_seconds
    while True:
        body = lock_body(record, ttl_seconds)
        etag = lock.put(body, IfNoneMatch="*")
        if etag is not None:
            break
        held = lock.read()
        if held is None:  # released in the meantime
            continue
        holder, held_body, held_etag = held
        if held_body == body:  # our own put, retried by botocore after S3 had stored it
            etag = held_etag
            break
        unchanged = sightings.unchanged_for(held_etag)
        if unchanged >= ttl_seconds:
            etag = lock.put(body, IfMatch=held_etag)
            if etag is not None:
                break
            continue  # another run took it over first: see who holds it now
        if time.monotonic() >= deadline:
            raise LockBusy(
                f"{lock.url} is held by {holder.get('owner', '?')}, "
                f"run dates {holder.get('run', '?')} (unchanged for {unchanged:.0f} s here; "
                f"stale after {ttl_seconds:g} s)"
            )
        time.sleep(LOCK_POLL_SECONDS)
    heartbeat = LockHeartbeat(lock, record, etag, ttl_seconds)
    heartbeat.start()
    try:
        yield HeldLock(
            {LOCK_URL_SETTING: lock.url, LOCK_TOKEN_SETTING: record["token"]}, lost=heartbeat.lost
        )
    finally:
        etag = heartbeat.stop()
        try:
            lock.delete(etag)
        except s3.AwsError as error:
            warn(f"cannot release the lock ({error}); it expires {ttl_seconds:g} s after the run")


@contextmanager
def job_fence(
    config: Mapping[str, Any], run_date: date, settings: Mapping[str, str]
) -> Iterator[Fence]:
    """The fence of one job run: the lock ``make submit`` holds for it (named in its Spark
    ``settings``); else, on an S3 output (a ``DEBUG=1`` or plain spark-submit run), the same
    lock taken here for the run, without waiting (sightings kept in the temporary
    directory); else none (a local output: a run outside ``make submit`` takes no flock)."""
    if settings.get(LOCK_TOKEN_SETTING):
        yield Fence.from_settings(settings, config["aws"])
        return
    output = config["output"]["path"]
    if not s3.is_s3_url(output):
        yield NO_FENCE
        return
    owner = f"{socket.gethostname()}:{os.getpid()}"
    sightings = Sightings(lock_path(output, tempfile.gettempdir()).with_suffix(".seen.json"))
    with s3_output_lock(
        config["aws"], output, 0, owner, f"{run_date}..{run_date}", LOCK_TTL_SECONDS, sightings
    ) as held:
        yield Fence.from_settings(held.settings, config["aws"])


def run_dates(first: date, last: date) -> list[date]:
    """Every date from ``first`` to ``last``, both included."""
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def summary(dates: Sequence[date], codes: Sequence[int]) -> list[str]:
    """One line per date (its outcome, or "not run" after a failure), and a total line."""
    lines = []
    for index, run_date in enumerate(dates):
        if index < len(codes):
            code = codes[index]
            outcome = EXIT_CODE_NAMES.get(code, "failed")
            lines.append(
                f"  {run_date}  {outcome}" + ("" if code == EXIT_OK else f" (exit {code})")
            )
        else:
            lines.append(f"  {run_date}  not run")
    succeeded = sum(1 for code in codes if code == EXIT_OK)
    failed = len(codes) - succeeded
    not_run = len(dates) - len(codes)
    if failed:
        head = f"stopped at {dates[len(codes) - 1]}: {succeeded} ok, 1 failed, {not_run} not run"
    else:
        head = f"all {succeeded} run dates ok"
    return [*lines, f"datalake submit: {head}"]


def submit_all(
    submission: Submission, dates: Sequence[date], held: HeldLock | None = None
) -> list[int]:
    """Run spark-submit once per date, in order, until one fails; return the exit codes.
    spark-submit keeps the lock's descriptors (a flock's) and is told the lock (an S3
    lock's URL and token, for the job's fence, with the config's settings in the properties
    file); once the lock is lost it is ended, and the date's code is ``EXIT_LOCK_BUSY``."""
    held = held or HeldLock()
    codes = []
    settings = (*submission.spark_config, *held.settings.items())
    with spark_properties(settings) as properties:
        for run_date in dates:
            command = submission.command(run_date, properties)
            print(f"datalake submit: {run_date}: {printable(command)}", flush=True)
            codes.append(run_holding(command, held))
            if codes[-1] != EXIT_OK:
                break
    return codes


def run_holding(command: list[str], held: HeldLock) -> int:
    """Run ``command`` while the lock is held; end it (SIGTERM, then SIGKILL) if it is lost."""
    process = subprocess.Popen(command, pass_fds=held.pass_fds)
    while True:
        try:
            code = process.wait(timeout=LOCK_POLL_SECONDS)
        except subprocess.TimeoutExpired:
            if not held.lost.is_set():
                continue
            process.terminate()
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            return EXIT_LOCK_BUSY
        return EXIT_LOCK_BUSY if held.lost.is_set() and code != EXIT_OK else code


@contextmanager
def run_lock(
    config: Mapping[str, Any],
    lock_dir: str,
    wait_seconds: float,
    dates: Sequence[date],
    ttl_seconds: float = LOCK_TTL_SECONDS,
) -> Iterator[HeldLock]:
    """Hold the lock of the config's output for the run of ``dates``: the S3 lock object for
    an S3 output (its sightings kept in ``lock_dir``), else the flock in ``lock_dir``."""
    output = config["output"]["path"]
    run = f"{dates[0]}..{dates[-1]}"
    if s3.is_s3_url(output):
        owner = f"{socket.gethostname()}:{os.getpid()}"
        sightings = Sightings(lock_path(output, lock_dir).with_suffix(".seen.json"))
        with s3_output_lock(
            config["aws"], output, wait_seconds, owner, run, ttl_seconds, sightings
        ) as held:
            yield held
    else:
        holder = f"pid {os.getpid()}, run dates {run}, since {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
        with output_lock(lock_path(output, lock_dir), wait_seconds, holder) as lock_fd:
            yield HeldLock(pass_fds=(lock_fd,))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The Makefile passes every option; see ``make submit`` and ``make backfill``."""
    parser = argparse.ArgumentParser(description="spark-submit the datalake job, once or per date.")
    parser.add_argument("--spark-submit", required=True, help="the spark-submit executable")
    parser.add_argument("--master", required=True)
    parser.add_argument("--deploy-mode", required=True, choices=("client", "cluster"))
    parser.add_argument("--config", required=True, help="local *config.json or s3:// URL")
    parser.add_argument("--package", required=True, help="packages.zip")
    parser.add_argument("--lock-dir", required=True, help="directory of the output locks")
    parser.add_argument(
        "--lock-wait", required=True, type=float, help="seconds to wait for the lock"
    )
    parser.add_argument(
        "--lock-ttl",
        type=float,
        default=LOCK_TTL_SECONDS,
        help="seconds an S3 lock may go unrenewed before another run takes it over",
    )
    parser.add_argument("--submit-args", default="", help="more spark-submit options, one string")
    parser.add_argument("--job-args", default="", help="more options of the job, one string")
    parser.add_argument("--run-date", type=date.fromisoformat, help="one run date, YYYY-MM-DD")
    parser.add_argument(
        "--from", dest="first", type=date.fromisoformat, help="backfill: first date"
    )
    parser.add_argument("--to", dest="last", type=date.fromisoformat, help="backfill: last date")
    args = parser.parse_args(argv)
    if (args.run_date is None) == (args.first is None or args.last is None):
        parser.error("give --run-date D, or both --from A and --to B")
    if args.first and args.last and args.first > args.last:
        parser.error(f"--from {args.first} is after --to {args.last}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Validate, lock, submit each date, summarise; return the exit code."""
    args = parse_args(argv)
    dates = [args.run_date] if args.run_date else run_dates(args.first, args.last)
    try:
        config = load_config(args.config)
        if not s3.is_s3_url(args.config) and not fnmatch.fnmatch(
            Path(args.config).name, CONFIG_GLOB
        ):
            raise ConfigError(
                f"{args.config}: name it {CONFIG_GLOB} so that the job finds it in SparkFiles"
            )
    except ConfigError as error:
        print(f"datalake submit: bad config: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        job_jars = jar_paths(packages((config["input"]["path"], config["output"]["path"])))
    except MissingJars as error:
        print(f"datalake submit: {error}", file=sys.stderr)
        return EXIT_FAILED
    submission = Submission(
        args.spark_submit,
        args.master,
        args.deploy_mode,
        args.package,
        args.config,
        tuple(shlex.split(args.submit_args)),
        tuple(shlex.split(args.job_args)),
        tuple((key, str(value)) for key, value in config["spark"].items()),
        tuple(str(path) for path in job_jars),
    )
    output = config["output"]["path"]
    try:
        with run_lock(config, args.lock_dir, args.lock_wait, dates, args.lock_ttl) as held:
            codes = submit_all(submission, dates, held)
    except LockBusy as error:
        print(f"datalake submit: lock busy: another run writes {output} ({error})", file=sys.stderr)
        return EXIT_LOCK_BUSY
    except s3.AwsError as error:
        print(f"datalake submit: cannot take the lock of {output}: {error}", file=sys.stderr)
        return EXIT_FAILED
    print("\n".join(summary(dates, codes)), flush=True)
    return codes[-1]


if __name__ == "__main__":
    sys.exit(main())
