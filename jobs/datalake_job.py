"""datalake: the daily batch job that finds electricity theft in smart-meter data.

The story, top-down: parse arguments -> start Spark -> extract the four tables -> validate
(every row used, deduplicated, outside the window, or rejected with a reason) -> usage ->
detect (one function per rule) -> score -> load (atomic, idempotent per run date).
With ``input.require_success_marker`` a run whose input tables lack their ``_SUCCESS`` marker
stops before reading anything, with its own exit code.

Run it with spark-submit (``--py-files packages.zip --files CONFIG``) or locally with
``DEBUG=1 python jobs/datalake_job.py --config CONFIG --run-date YYYY-MM-DD``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a plain script (DEBUG=1, IPython): import the repository's packages from the checkout.
# Under spark-submit they come from --py-files packages.zip, as on the cluster's executors.
if __package__ in (None, "") and "PYSPARK_GATEWAY_PORT" not in os.environ:
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dependencies import s3
from dependencies.config import ConfigError
from dependencies.logging import LOGGER_NAME, bind_run_context, flush_logger, redact
from dependencies.metrics import push_run_metrics, run_metrics
from dependencies.publish import (
    publish,
    stage_outputs,
    stage_work,
    staging_directory,
)
from dependencies.readiness import InputNotReady, require_ready
from dependencies.run_window import RunWindow
from dependencies.spark import start_spark
from dependencies.tables import (
    MEASURED_DATE,
    TABLE_NAMES,
    InputError,
    count_read,
    read_failures_named,
    read_raw_table,
)
from jobs import rules, usage, validate

APP_NAME = "datalake_job"
# Exit codes of a run (README, "Scheduling with cron"). EXIT_LOCK_BUSY comes from
# dependencies/submit.py, which holds the lock on the output path around spark-submit.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_BAD_INPUT = 3
EXIT_INPUT_NOT_READY = 4
EXIT_LOCK_BUSY = 5
EXIT_CODE_NAMES = {
    EXIT_OK: "ok",
    EXIT_FAILED: "run failed",
    EXIT_BAD_CONFIG: "bad config",
    EXIT_BAD_INPUT: "bad input",
    EXIT_INPUT_NOT_READY: "input not ready",
    EXIT_LOCK_BUSY: "lock busy",
}


@dataclass
class Checked:
    """Every input row with its status; ``used`` rows are the valid input of detection.

    A table's frame has a row per input row, or (the readings' ledger) a ``readings`` column
    saying how many input rows each of its rows stands for."""

    tables: dict[str, DataFrame]

    def used(self, table: str) -> DataFrame:
        """The rows of ``table`` that detection uses, typed."""
        frame = self.tables[table].where(F.col("status") == validate.USED)
        return frame.drop("status", "record")


@dataclass
class StageTimer:
    """Wall-clock seconds per stage of the run."""

    seconds: dict[str, float] = field(default_factory=dict)

    def measure(self, stage: str, started: float) -> None:
        """Record (and log) the time since ``started`` under ``stage``."""
        self.seconds[stage] = round(time.monotonic() - started, 3)
        logging.getLogger(LOGGER_NAME).info(
            "stage %s done in %.3f s", stage, self.seconds[stage], extra={"stage": stage, "seconds": self.seconds[stage]}
        )


@dataclass
class Run:
    """One run of the job: its date, config path, start instant, id and stage timings."""

    run_date: date
    config_path: str | None
    started_at: datetime
    run_id: str = ""
    timer: StageTimer = field(default_factory=StageTimer)

    def __post_init__(self) -> None:
        self.run_id = self.run_id or f"{self.run_date.isoformat()}-{uuid.uuid4().hex[:12]}"


def run_start_instant() -> datetime:
    """The moment the run starts (UTC, whole seconds); a reading stamped later is a meter
    clock error (``future_timestamp``)."""
    return datetime.now(UTC).replace(microsecond=0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``--run-date`` (default: yesterday, UTC) and ``--config``."""
    parser = argparse.ArgumentParser(description="Find electricity theft in smart-meter data.")
    parser.add_argument(
        "--run-date",
        type=date.fromisoformat,
        default=datetime.now(UTC).date() - timedelta(days=1),
        help="last UTC day of the detection window, YYYY-MM-DD (default: yesterday)",
    )
    parser.add_argument("--config", help="JSON config (default: a *config.json sent with --files)")
    return parser.parse_args(argv)


def extract(spark: SparkSession, input_config: dict[str, Any], window: RunWindow) -> dict[str, DataFrame]:
    """The four tables as stored; measurements only from the day partitions the run needs."""
    raw = {
        table: read_raw_table(spark, input_config["path"], table, input_config["format"])
        for table in TABLE_NAMES
    }
    if MEASURED_DATE in raw["measurements"].columns:
        day = F.col(MEASURED_DATE).cast("string")
        first, last = window.read_start_date, window.window_end.date()
        raw["measurements"] = raw["measurements"].where(day.between(str(first), str(last)))
    return raw


def validate_tables(raw: dict[str, DataFrame], window: RunWindow, run_started_at: datetime) -> Checked:
    """Give every row of every table its status, tables in dependency order."""
    checked: dict[str, DataFrame] = {}
    checked["device"] = raw["device"].transform(validate.type_rows("device")).transform(
        validate.check_keys("device")
    ).transform(validate.finish)
    devices = Checked(checked).used("device")
    checked["measuring_component"] = (
        raw["measuring_component"]
        .transform(validate.type_rows("measuring_component"))
        .transform(validate.check_components)
        .transform(validate.check_reference("device_id", devices, "device_id", "unknown_device"))
        .transform(validate.check_keys("measuring_component"))
        .transform(validate.finish)
    )
    checked["install_event"] = (
        raw["install_event"]
        .transform(validate.type_rows("install_event"))
        .transform(validate.check_installs)
        .transform(validate.check_reference("device_id", devices, "device_id", "unknown_device"))
        .transform(validate.check_keys("install_event"))
        .transform(validate.check_overlaps)
        .transform(validate.check_install_window(window))
        .transform(validate.finish)
    )
    components = Checked(checked).used("measuring_component")
    # One row per reading, lazily: it is read once, by the ledger (:func:`ledger_of_readings`),
    # which also settles which readings before B are needed (usage.to_intervals).
    checked["measurements"] = (
        raw["measurements"]
        .transform(validate.type_rows("measurements"))
        .transform(validate.check_measurement_values(run_started_at))
        .transform(
            validate.check_reference(
                "measuring_component_id", components, "measuring_component_id", "unknown_component"
            )
        )
        # One shuffle by component: the duplicate, window and usage windows all reuse it.
        .repartition("measuring_component_id")
        .transform(validate.check_readings(window))
        .transform(validate.finish)
        .select("measuring_component_id", "measured_at", "value", "status", "record")
    )
    for table in ("device", "measuring_component", "install_event"):
        checked[table] = checked[table].cache()  # small, and read by several steps
    return Checked(checked)


def count_rows(
    raw: dict[str, DataFrame], checked: Checked, tables: tuple[str, ...] = TABLE_NAMES
) -> dict[str, dict[str, Any]]:
    """Per table: rows read (counted on the input as read), used, rejected (and by reason),
    deduplicated, outside_window.

    Fails loudly if the counts do not reconcile; an empty device table is bad input."""
    counts: dict[str, dict[str, Any]] = {}
    for table in tables:
        frame = checked.tables[table]
        read = count_read(raw[table], table)
        if table == "device" and read == 0:
            raise InputError("table device: no rows")
        weight = F.sum(usage.READINGS) if usage.READINGS in frame.columns else F.count("*")
        with read_failures_named(table):
            by_status = {
                row["status"]: row["count"] for row in frame.groupBy("status").agg(weight.alias("count")).collect()
            }
        reasons = {k: v for k, v in sorted(by_status.items()) if k not in validate.NOT_REJECTED}
        entry = {
            "read": read,
            "used": by_status.get(validate.USED, 0),
            "rejected": sum(reasons.values()),
            "deduplicated": by_status.get(validate.DEDUPLICATED, 0),
            "outside_window": by_status.get(validate.OUTSIDE_WINDOW, 0),
            "rejected_by_reason": reasons,
        }
        accounted = entry["used"] + entry["rejected"] + entry["deduplicated"] + entry["outside_window"]
        if accounted != entry["read"]:
            raise RuntimeError(f"table {table}: counts do not reconcile: {entry}")
        counts[table] = entry
    return counts


def rejects(checked: Checked) -> DataFrame:
    """All rejected rows: table, reason and the original row as JSON."""
    frames = []
    for table, frame in checked.tables.items():
        rejected = frame.where(~F.col("status").isin(*validate.NOT_REJECTED))
        if usage.READINGS in frame.columns:  # a ledger row stands for that many identical rejects
            copies = F.array_repeat(F.lit(1), F.col(usage.READINGS).cast("int"))
            rejected = rejected.withColumn("_copy", F.explode(copies))
        frames.append(rejected.select(F.lit(table).alias("table"), F.col("status").alias("reason"), "record"))
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result


def intervals_of_readings(checked: Checked, usage_config: dict[str, Any], window: RunWindow) -> DataFrame:
    """The checked readings, each used one with the interval it closes, its zero run and its
    install period."""
    return (
        checked.tables["measurements"]
        .transform(usage.to_intervals(checked.used("measuring_component"), usage_config, window.baseline_start))
        .transform(usage.mark_zero_runs(usage_config))
        .transform(usage.attach_installs(checked.used("install_event")))
    )


def ledger_of_readings(checked: Checked, usage_config: dict[str, Any], window: RunWindow) -> DataFrame:
    """The one pass over the checked readings: intervals, install periods, zero runs, days,
    folded into the ledger (usage per device and day; the other readings by status)."""
    return (
        intervals_of_readings(checked, usage_config, window)
        .transform(usage.split_by_day)
        .transform(usage.by_day)
    )


def write_ledger(ledger: DataFrame, staging: str) -> DataFrame:
    """Compute the ledger once (the job's only pass over the readings), keep it with the
    run's staged outputs, and continue from the stored copy."""
    with read_failures_named("measurements"):
        return stage_work(ledger, staging, "readings_ledger")


def main(argv: list[str] | None = None) -> int:
    """Run the job; return the process exit code."""
    args = parse_args(argv)
    run = Run(args.run_date, args.config, run_start_instant())
    try:
        spark, log, config = start_spark(app_name=APP_NAME, config_path=args.config)
    except ConfigError as error:
        print(f"datalake: bad config: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    bind_run_context(log, run_id=run.run_id, run_date=run.run_date.isoformat())
    log.info("run started", extra={"config": config})  # the logger masks secret-looking keys
    spark.catalog.clearCache()  # a session reused from an earlier run (tests, IPython) drops its cache
    try:
        report, paths, alerts = detect_and_publish(spark, config, run)
    except (InputNotReady, InputError) as error:
        exit_code = EXIT_INPUT_NOT_READY if isinstance(error, InputNotReady) else EXIT_BAD_INPUT
        log.error("%s: %s", EXIT_CODE_NAMES[exit_code], error)
        print(f"datalake: {EXIT_CODE_NAMES[exit_code]}: {error}", file=sys.stderr)
        return finish(log, config, exit_code, run)
    except Exception as error:
        log.exception("run %s failed", run.run_id)
        print(f"datalake: run failed: {str(error).splitlines()[0]}", file=sys.stderr)
        return finish(log, config, EXIT_FAILED, run)
    print_summary(report, paths, alerts)
    return finish(log, config, EXIT_OK, run, report)


def detect_and_publish(
    spark: SparkSession, config: dict[str, Any], run: Run
) -> tuple[dict[str, Any], dict[str, str], DataFrame]:
    """The run itself: extract -> validate -> usage -> detect -> score -> load.
    Returns the report, the published paths and the alerts."""
    window = RunWindow.from_config(run.run_date, config)
    logging.getLogger(LOGGER_NAME).info(
        "run %s: window %s..%s, baseline from %s", run.run_id, window.window_start_date,
        window.run_date, window.baseline_start_date,
    )
    require_ready(spark, config["input"], TABLE_NAMES, config["aws"])
    with staging_directory(spark, config["output"]["path"], run.run_date, run.run_id) as staging:
        return detect_and_stage(spark, config, run, window, staging)


def detect_and_stage(
    spark: SparkSession, config: dict[str, Any], run: Run, window: RunWindow, staging: str
) -> tuple[dict[str, Any], dict[str, str], DataFrame]:
    """Extract, validate, detect, score; stage the outputs and publish them."""
    started = time.monotonic()
    raw = extract(spark, config["input"], window)
    checked = validate_tables(raw, window, run.started_at)
    # The small tables first: a file that cannot be read is named by its own table.
    counts = count_rows(raw, checked, tuple(t for t in TABLE_NAMES if t != "measurements"))
    checked.tables["measurements"] = write_ledger(ledger_of_readings(checked, config["usage"], window), staging)
    counts |= count_rows(raw, checked, ("measurements",))
    run.timer.measure("extract_validate", started)

    started = time.monotonic()
    detection = detect_and_score(checked, window, config, lambda frame, name: stage_work(frame, staging, name))
    findings, alerts = detection.findings, detection.alerts
    run.timer.measure("detect", started)

    started = time.monotonic()
    stage_outputs({"alerts": alerts, "findings": findings, "rejects": rejects(checked)}, staging)
    run.timer.measure("write", started)
    report = build_report(spark, config, run, window, counts, checked, findings, alerts)
    paths = publish(spark, staging, report, config["output"]["path"], run.run_date)
    if config["output"]["report_s3_url"]:
        paths["report_copy"] = s3.upload_report(
            config["aws"], config["output"]["report_s3_url"], run.run_date, report
        )
    return report, paths, spark.read.parquet(paths["alerts"])  # as published: staging is gone


@dataclass(frozen=True)
class Detection:
    """The frames of the detect and score steps: daily usage, the rules' evidence (its
    per-device summaries in ``evidence.devices``), the findings and the alerts."""

    daily: DataFrame
    evidence: rules.Evidence
    findings: DataFrame
    alerts: DataFrame


def detect_and_score(
    checked: Checked, window: RunWindow, config: dict[str, Any], keep: Callable[[DataFrame, str], DataFrame]
) -> Detection:
    """Ledger -> daily usage -> evidence -> findings -> alerts. ``keep(frame, name)`` stores a
    frame the later steps read many times and returns the stored copy (the job stages it;
    ``jobs/debug.py`` caches it)."""
    installs = checked.used("install_event")
    daily = checked.tables["measurements"].transform(usage.daily_usage(window))
    evidence = rules.Evidence.build(daily, checked.used("measuring_component"), installs, window, config)
    # Stored once each: eleven rules, the score and the report then plan over small files
    # instead of the whole lineage behind them.
    evidence = replace(evidence, devices=keep(evidence.devices, "devices"))
    findings = keep(rules.detect(evidence, config), "findings")
    alerts = rules.score(findings, evidence, config)
    return Detection(daily, evidence, findings, alerts)


def build_report(
    spark: SparkSession,
    config: dict[str, Any],
    run: Run,
    window: RunWindow,
    counts: dict[str, dict[str, Any]],
    checked: Checked,
    findings: DataFrame,
    alerts: DataFrame,
) -> dict[str, Any]:
    """The run report: parameters, per-table counts, findings per rule, alerts, durations."""
    component_types = checked.used("measuring_component").groupBy("component_type").count()
    return {
        "run_id": run.run_id,
        "run_date": run.run_date.isoformat(),
        "run_started_at": run.started_at.isoformat().replace("+00:00", "Z"),
        "parameters": {
            "config": run.config_path,
            "input": config["input"],
            "output": config["output"],
            "window_start": window.window_start_date.isoformat(),
            "window_end": window.run_date.isoformat(),
            "baseline_start": window.baseline_start_date.isoformat(),
            "window_days": window.window_days,
            "baseline_days": window.baseline_days,
        },
        "counts": counts,
        # Types other than IMPORT_KWH, EXPORT_KWH and TAMPER_COUNT are kept and ignored.
        "component_types": {
            row["component_type"]: row["count"] for row in component_types.orderBy("component_type").collect()
        },
        "findings_by_rule": rules.count_by_rule(findings),
        "alerts": alerts.count(),
        "spark_application_id": spark.sparkContext.applicationId,
        "durations_seconds": run.timer.seconds,
    }


def finish(
    log: logging.Logger,
    config: dict[str, Any],
    exit_code: int,
    run: Run,
    report: dict[str, Any] | None = None,
) -> int:
    """Log the outcome, push the run's metrics (a failed push never fails the run), deliver
    the logs; return ``exit_code``."""
    log.info("run finished with exit code %d", exit_code, extra={"exit_code": exit_code})
    metrics = run_metrics(exit_code, run.started_at.timestamp(), time.time(), run.timer.seconds, report)
    try:
        if push_run_metrics(metrics, config["metrics"]):
            log.info("metrics pushed to %s", redact(config["metrics"]["pushgateway_url"]))
    except (OSError, ValueError) as error:  # unreachable, refused or malformed URL
        log.warning("metrics not pushed: %s: %s", type(error).__name__, error)
    flush_logger(log)
    return exit_code


def print_summary(report: dict[str, Any], paths: dict[str, str], alerts: DataFrame) -> None:
    """What the run read and found, for a person at a terminal."""
    print(f"datalake run {report['run_id']} for {report['run_date']}")
    for table, entry in report["counts"].items():
        print(
            f"  {table:<20} read {entry['read']:>9}  used {entry['used']:>9}  rejected "
            f"{entry['rejected']:>6}  deduplicated {entry['deduplicated']:>6}  outside "
            f"{entry['outside_window']:>9}"
        )
    print(f"  findings by rule: {report['findings_by_rule']}")
    print(f"  alerts: {report['alerts']}")
    for row in alerts.orderBy(F.desc("score"), "device_id").collect():
        print(f"    {row['device_id']:<12} score {row['score']:.3f}  {', '.join(row['rules'])}")
    for name, path in paths.items():
        print(f"  {name}: {path}")


if __name__ == "__main__":
    sys.exit(main())
