"""Submit the job with spark-submit, for cron: one run date, or a backfill over a range.

``make submit`` and ``make backfill`` call this with the Makefile's variables. It validates
the config, takes the lock of the config's output path (so that runs writing the same output
never overlap), runs ``spark-submit --py-files packages.zip --files CONFIG
jobs/datalake_job.py --run-date D`` once per date, stops at the first failure, prints a
summary, and exits with the job's exit code (``EXIT_*`` in dependencies/exit_codes.py).

The lock is an exclusive flock(2) on ``<lock-dir>/datalake-<hash of the output path>.lock``,
held until spark-submit ends (the child process inherits it). A second run exits at once
with ``EXIT_LOCK_BUSY``, or first waits up to ``--lock-wait`` seconds for the lock.
"""

from __future__ import annotations

import argparse
import fcntl
import fnmatch
import hashlib
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

from dependencies import s3
from dependencies.config import CONFIG_GLOB, ConfigError, load_config
from dependencies.exit_codes import (
    EXIT_BAD_CONFIG,
    EXIT_CODE_NAMES,
    EXIT_LOCK_BUSY,
    EXIT_OK,
)

REPO = Path(__file__).resolve().parent.parent
ENTRY_FILE = REPO / "jobs" / "datalake_job.py"
LOCK_POLL_SECONDS = 1.0


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

    def command(self, run_date: date) -> list[str]:
        """The spark-submit command line of the run for ``run_date``.

        A local config travels with ``--files`` (the job finds it in SparkFiles); an
        ``s3://`` config is passed to the job as ``--config``, which reads it with boto3.
        The config's ``spark`` settings are ``--conf`` options (the session is started with
        them), before ``extra_args``, whose own ``--conf`` wins."""
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
            *[
                option
                for key, value in self.spark_config
                for option in ("--conf", f"{key}={value}")
            ],
            *self.extra_args,
            str(ENTRY_FILE),
            *job_args,
        ]


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


def submit_all(submission: Submission, dates: Sequence[date], lock_fd: int) -> list[int]:
    """Run spark-submit once per date, in order, until one fails; return the exit codes."""
    codes = []
    for run_date in dates:
        command = submission.command(run_date)
        print(f"datalake submit: {run_date}: {shlex.join(command)}", flush=True)
        codes.append(subprocess.run(command, check=False, pass_fds=(lock_fd,)).returncode)
        if codes[-1] != EXIT_OK:
            break
    return codes


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
    submission = Submission(
        args.spark_submit,
        args.master,
        args.deploy_mode,
        args.package,
        args.config,
        tuple(shlex.split(args.submit_args)),
        tuple(shlex.split(args.job_args)),
        tuple((key, str(value)) for key, value in config["spark"].items()),
    )
    lock = lock_path(config["output"]["path"], args.lock_dir)
    holder = (
        f"pid {os.getpid()}, run dates {dates[0]}..{dates[-1]}, "
        f"since {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
    )
    try:
        with output_lock(lock, args.lock_wait, holder) as lock_fd:
            codes = submit_all(submission, dates, lock_fd)
    except LockBusy as error:
        print(
            f"datalake submit: lock busy: another run writes {config['output']['path']} ({error})",
            file=sys.stderr,
        )
        return EXIT_LOCK_BUSY
    print("\n".join(summary(dates, codes)), flush=True)
    return codes[-1]


if __name__ == "__main__":
    sys.exit(main())
