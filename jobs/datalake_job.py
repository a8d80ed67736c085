"""datalake: the daily batch job that finds electricity theft in smart-meter data.

The story, top-down: parse arguments -> start Spark -> extract the four tables -> validate
(every row used, deduplicated, outside the window, or rejected with a reason) -> usage (the
readings validated and folded into their ledger, one pass; every table's rows counted) ->
detect (the rules' findings) -> score (alerts valued, ranked and dated) -> publish (outputs,
evidence, report and HTML page staged, then published atomically, idempotent per run date)
-> finish (metrics, logs, the summary). Each step takes what the steps before it returned.
With ``input.require_success_marker`` a run whose input tables lack their ``_SUCCESS`` marker
stops before reading anything, with its own exit code.

Run it with spark-submit (``--py-files packages.zip --files CONFIG``) or locally with
``DEBUG=1 python jobs/datalake_job.py --config CONFIG --run-date YYYY-MM-DD``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a plain script (DEBUG=1, IPython): import the repository's packages from the checkout.
# Under spark-submit they come from --py-files packages.zip, as on the cluster's executors.
if __package__ in (None, "") and "PYSPARK_GATEWAY_PORT" not in os.environ:
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import DataFrame, SparkSession

from dependencies.config import ConfigError, config_changes
from dependencies.exit_codes import (
    EXIT_BAD_CONFIG,
    EXIT_BAD_INPUT,
    EXIT_CODE_NAMES,
    EXIT_FAILED,
    EXIT_INPUT_NOT_READY,
    EXIT_LOCK_BUSY,
    EXIT_OK,
)
from dependencies.fence import LOCK_SETTINGS, NO_FENCE, Fence, LockLost
from dependencies.jars import MissingJars
from dependencies.logging import CONSOLE_FIELDS, LOGGER_NAME, bind_run_context, quiet_spark_logger
from dependencies.progress import Progress
from dependencies.publish import stage_work, staging_directory, work_path
from dependencies.readiness import InputNotReady, require_ready
from dependencies.run_window import RunWindow
from dependencies.spark import adaptive_execution_for_input, jobs_started, start_spark
from dependencies.submit import LockBusy, job_fence
from dependencies.tables import TABLE_NAMES, InputError
from jobs.alerts import history
from jobs.detection import detect, score
from jobs.inputs import count_rows, extract, validate_tables
from jobs.publication import Published, publish_run, stage_run
from jobs.readings import usage_ledger
from jobs.report import RunResults, print_summary
from jobs.run import Run, finish, run_start_instant

APP_NAME = "datalake_job"
# How the run's command line starts, as its HTML report states it.
SCRIPT = "jobs/datalake_job.py"
# The Spark class that warns of every window without partitions (the alerts' rank is one).
WINDOW_WARNINGS = "org.apache.spark.sql.execution.window.WindowExec"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``--run-date`` (default: yesterday, UTC), ``--config`` and ``--full-refresh``."""
    parser = argparse.ArgumentParser(description="Find electricity theft in smart-meter data.")
    parser.add_argument(
        "--run-date",
        type=date.fromisoformat,
        default=datetime.now(UTC).date() - timedelta(days=1),
        help="last UTC day of the detection window, YYYY-MM-DD (default: yesterday)",
    )
    parser.add_argument("--config", help="JSON config (default: a *config.json sent with --files)")
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="compute every day of the readings' ledger again instead of reusing the stored ones",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the job; return the process exit code."""
    args = parse_args(argv)
    command = shlex.join([SCRIPT, *(sys.argv[1:] if argv is None else argv)])
    run = Run(
        args.run_date,
        args.config,
        run_start_instant(),
        command=command,
        full_refresh=args.full_refresh,
    )
    try:
        spark, log, config = start_spark(app_name=APP_NAME, config_path=args.config)
    except ConfigError as error:
        print(f"datalake: bad config: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except MissingJars as error:
        print(f"datalake: {error}", file=sys.stderr)
        return EXIT_FAILED
    bind_run_context(log, run_id=run.run_id, run_date=run.run_date.isoformat())
    # A run date's alerts are ranked in one window over all of them, on purpose (they are
    # few): Spark's warning about a window without partitions is noise here.
    quiet_spark_logger(spark, WINDOW_WARNINGS)
    # The whole config to the structured targets, what differs from the defaults to a
    # person; the logger masks secret-looking keys.
    changes = {"config_file": run.config_path, "config_changes": config_changes(config)}
    log.info("run started", extra={"config": config, CONSOLE_FIELDS: changes})
    spark.catalog.clearCache()  # a session reused from an earlier run (tests, IPython)
    try:
        lock = {key: spark.conf.get(key, "") for key in LOCK_SETTINGS}  # from make submit
        with Progress(APP_NAME, spark) as progress, job_fence(config, run.run_date, lock) as fence:
            run.timer.on_begin = progress.step
            run.timer.count_jobs_with(lambda: jobs_started(spark))
            published = run_job(spark, config, run, fence)
    except (InputNotReady, InputError, LockBusy, LockLost) as error:
        exit_code = (
            EXIT_INPUT_NOT_READY
            if isinstance(error, InputNotReady)
            else EXIT_BAD_INPUT
            if isinstance(error, InputError)
            else EXIT_LOCK_BUSY
        )
        log.error("%s: %s", EXIT_CODE_NAMES[exit_code], error)
        print(f"datalake: {EXIT_CODE_NAMES[exit_code]}: {error}", file=sys.stderr)
        return finish(log, config, exit_code, run)
    except Exception as error:
        log.exception("run %s failed", run.run_id)
        print(f"datalake: run failed: {str(error).splitlines()[0]}", file=sys.stderr)
        return finish(log, config, EXIT_FAILED, run)
    exit_code = finish(log, config, EXIT_OK, run, published.report)
    # Last: what a person at the terminal reads.
    print_summary(published.report, published.paths, published.top)
    return exit_code


def run_job(
    spark: SparkSession, config: dict[str, Any], run: Run, fence: Fence = NO_FENCE
) -> Published:
    """Extract -> validate -> usage -> detect -> score -> publish, each stage timed and each
    taking what the stages before it returned; every frame read more than once is staged with
    the run's outputs until they are published. Before each commit, ``fence`` checks that the
    run still holds the lock of its output."""
    window = RunWindow.from_config(run.run_date, config)
    output = config["output"]["path"]
    logging.getLogger(LOGGER_NAME).info(
        "run %s: window %s..%s, baseline from %s",
        run.run_id,
        window.window_start_date,
        window.run_date,
        window.baseline_start_date,
    )
    require_ready(spark, config["input"], TABLE_NAMES, config["aws"])
    with staging_directory(spark, output, run.run_date, run.run_id, fence) as staging:

        def materialize(frame: DataFrame, name: str) -> DataFrame:
            return stage_work(frame, staging, name)

        with run.timer.stage("extract"):
            raw = extract(spark, config["input"], window)
            sized_for_input(spark, raw["measurements"], config)
        with run.timer.stage("validate"):
            tables = validate_tables(raw, window)
        with run.timer.stage("usage"):  # the readings validated too: the one pass over them
            work = work_path(staging, "ledger")
            ledger = usage_ledger(spark, tables, config, run, window, work, materialize, fence)
            counts = count_rows(tables, ledger.frame, ledger.read_count)
        with run.timer.stage("detect"):
            detection = detect(tables, ledger, window, config, materialize)
        with run.timer.stage("score"):
            previous = history.previous_run(spark, output, run.run_date, config["history_days"])
            scored = score(detection, previous, window, config, materialize)
        with run.timer.stage("publish"):  # the commits after it: the report holds its time
            results = RunResults(run, window, counts, tables, ledger, detection, scored)
            staged = stage_run(spark, staging, config, results)
        return publish_run(spark, staging, staged, config, run, fence)


def sized_for_input(spark: SparkSession, measurements: DataFrame, config: dict[str, Any]) -> None:
    """Spark's adaptive execution for the rest of the run, by the size of the measurements it
    reads (off under ``adaptive_execution_min_input_mib``), unless the config's ``spark``
    section or spark-submit set it."""
    adaptive = adaptive_execution_for_input(
        spark, measurements, config["adaptive_execution_min_input_mib"], config["spark"]
    )
    if adaptive is not None:
        logging.getLogger(LOGGER_NAME).info(
            "adaptive execution %s for this input's size", "on" if adaptive else "off"
        )


if __name__ == "__main__":
    sys.exit(main())
