"""datalake: the daily batch job that finds electricity theft in smart-meter data.

The story, top-down: parse arguments -> start Spark -> extract the four tables -> validate
(every row used, deduplicated, outside the window, or rejected with a reason) -> usage ->
detect (one function per rule) -> score -> value, rank and history of the alerts -> evidence
and the HTML report -> load (atomic, idempotent per run date).
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
from dependencies.config import ConfigError, config_changes
from dependencies.exit_codes import (
    EXIT_BAD_CONFIG,
    EXIT_BAD_INPUT,
    EXIT_CODE_NAMES,
    EXIT_FAILED,
    EXIT_INPUT_NOT_READY,
    EXIT_OK,
)
from dependencies.logging import (
    CONSOLE_FIELDS,
    LOGGER_NAME,
    bind_run_context,
    flush_logger,
    quiet_spark_logger,
    redact,
)
from dependencies.metrics import PushFailed, push_run_metrics, run_metrics
from dependencies.progress import Progress
from dependencies.publish import (
    REPORT_PAGE,
    publish,
    stage_outputs,
    stage_report_page,
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
from dependencies.text_table import text_table
from jobs import alert_history, alert_value, ledger_store, rules, usage, validate
from jobs.alert_evidence import collect_rows, evidence_table
from jobs.alert_report import render_alerts_html

APP_NAME = "datalake_job"
# How the run's command line starts, as its HTML report states it.
SCRIPT = "jobs/datalake_job.py"
# The end-of-run summary: row statuses per table, the top alerts and their columns.
SUMMARY_ROW_STATUSES = ("used", "rejected", "deduplicated", "outside_window")
SUMMARY_ALERT_COLUMNS = ("rank", "device_id", "score", "estimated_value", "status", "rules")
SUMMARY_TOP_ALERTS = 10
# The Spark class that warns of every window without partitions (the alerts' rank is one).
WINDOW_WARNINGS = "org.apache.spark.sql.execution.window.WindowExec"


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
    """Wall-clock seconds per stage of the run; ``on_begin`` hears each stage's name as it
    begins (the progress line)."""

    seconds: dict[str, float] = field(default_factory=dict)
    on_begin: Callable[[str], None] = lambda stage: None

    def begin(self, stage: str) -> float:
        """Announce ``stage``; return its start, for :meth:`measure`."""
        self.on_begin(stage)
        return time.monotonic()

    def measure(self, stage: str, started: float) -> None:
        """Record (and log) the time since ``started`` under ``stage``."""
        self.seconds[stage] = round(time.monotonic() - started, 3)
        logging.getLogger(LOGGER_NAME).info(
            "stage %s done in %.3f s", stage, self.seconds[stage], extra={"stage": stage, "seconds": self.seconds[stage]}
        )


@dataclass
class Run:
    """One run of the job: its date, config path, start instant, id, command line and
    stage timings."""

    run_date: date
    config_path: str | None
    started_at: datetime
    run_id: str = ""
    command: str = ""
    full_refresh: bool = False
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
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="compute every day of the readings' ledger again instead of reusing the stored ones",
    )
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
    # One row per reading, lazily: it is read once, by the ledger (:func:`ledger_of_readings`).
    checked["measurements"] = raw["measurements"].transform(
        validate.check_measurements(components, window, run_started_at)
    )
    for table in ("device", "measuring_component", "install_event"):
        checked[table] = checked[table].cache()  # small, and read by several steps
    return Checked(checked)


def count_rows(
    raw: dict[str, DataFrame],
    checked: Checked,
    tables: tuple[str, ...] = TABLE_NAMES,
    read_counts: dict[str, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per table: rows read (counted on the input as read, or given in ``read_counts``),
    used, rejected (and by reason), deduplicated, outside_window.

    Fails loudly if the counts do not reconcile; an empty device table is bad input."""
    counts: dict[str, dict[str, Any]] = {}
    for table in tables:
        frame = checked.tables[table]
        read = (read_counts or {}).get(table)
        read = count_read(raw[table], table) if read is None else read
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


def valid_installs(checked: Checked) -> DataFrame:
    """The install periods that passed every check, whether or not the run window needs
    them (a day's rows do not depend on the run date)."""
    frame = checked.tables["install_event"]
    return frame.where(F.col("status").isin(validate.USED, validate.OUTSIDE_WINDOW)).drop("status", "record")


def intervals_of_readings(checked: Checked, usage_config: dict[str, Any], window: RunWindow) -> DataFrame:
    """The checked readings, each used one with the interval it closes, its zero run and its
    install period."""
    return checked.tables["measurements"].transform(usage.readings_intervals(
        checked.used("measuring_component"), valid_installs(checked), usage_config, window.read_start))


def ledger_of_readings(checked: Checked, usage_config: dict[str, Any], window: RunWindow) -> DataFrame:
    """The one pass over the checked readings of the whole read range, kept nowhere:
    intervals, install periods, zero runs, days, folded into the ledger (usage per device
    and day; the other readings by status)."""
    return checked.tables["measurements"].transform(usage.readings_rows(
        checked.used("measuring_component"), valid_installs(checked), usage_config, window.read_start
    )).transform(usage.run_ledger(window))


def write_ledger(ledger: DataFrame, staging: str) -> DataFrame:
    """Compute the ledger once (the job's only pass over the readings), keep it with the
    run's staged outputs, and continue from the stored copy.

    It is stored in one order, whatever it was merged from (days kept in the store or
    computed now): the rules then add up the same numbers in the same order, so a run
    that reuses stored days publishes exactly what a full run does, to the last bit."""
    in_order = ledger.repartition("device_id").sortWithinPartitions(*usage.LEDGER_KEYS)
    with read_failures_named("measurements"):
        return stage_work(in_order, staging, "readings_ledger")


def main(argv: list[str] | None = None) -> int:
    """Run the job; return the process exit code."""
    args = parse_args(argv)
    command = shlex.join([SCRIPT, *(sys.argv[1:] if argv is None else argv)])
    run = Run(args.run_date, args.config, run_start_instant(), command=command, full_refresh=args.full_refresh)
    try:
        spark, log, config = start_spark(app_name=APP_NAME, config_path=args.config)
    except ConfigError as error:
        print(f"datalake: bad config: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    bind_run_context(log, run_id=run.run_id, run_date=run.run_date.isoformat())
    # A run date's alerts are ranked in one window over all of them, on purpose (they are few):
    # Spark's warning about a window without partitions is noise here.
    quiet_spark_logger(spark, WINDOW_WARNINGS)
    # The whole config to the structured targets, what differs from the defaults to a person;
    # the logger masks secret-looking keys.
    log.info("run started", extra={
        "config": config,
        CONSOLE_FIELDS: {"config_file": run.config_path, "config_changes": config_changes(config)},
    })
    spark.catalog.clearCache()  # a session reused from an earlier run (tests, IPython) drops its cache
    try:
        with Progress(APP_NAME, spark) as progress:
            run.timer.on_begin = progress.step
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
    exit_code = finish(log, config, EXIT_OK, run, report)
    print_summary(report, paths, alerts)  # last: what a person at the terminal reads
    return exit_code


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
    """Extract, validate, detect, score; value, rank and date the alerts; stage the outputs,
    the evidence of the highest-ranked alerts and the report page, and publish them."""
    started = run.timer.begin("extract_validate")
    raw = extract(spark, config["input"], window)
    checked = validate_tables(raw, window, run.started_at)
    # The small tables first: a file that cannot be read is named by its own table.
    counts = count_rows(raw, checked, tuple(t for t in TABLE_NAMES if t != "measurements"))
    inputs = ledger_store.Inputs(raw["measurements"], checked.used("measuring_component"), valid_installs(checked),
                                 config["usage"], window, run.started_at)
    ledger, read, ledger_outcome = ledger_store.readings_ledger(
        spark, inputs, config["output"]["path"], config["input"]["path"], run.run_id, run.full_refresh
    )
    checked.tables["measurements"] = write_ledger(ledger, staging)
    counts |= count_rows(raw, checked, ("measurements",), {"measurements": read})
    run.timer.measure("extract_validate", started)

    started = run.timer.begin("detect")
    previous = alert_history.previous_run(spark, config["output"]["path"], run.run_date, config["history_days"])
    detection = detect_and_score(
        checked, window, config, previous, lambda frame, name: stage_work(frame, staging, name)
    )
    findings, alerts = detection.findings, detection.alerts
    run.timer.measure("detect", started)

    started = run.timer.begin("write")
    alerts = stage_outputs({"alerts": alerts, "findings": findings, "rejects": rejects(checked)}, staging)["alerts"]
    run.timer.measure("write", started)

    started = run.timer.begin("evidence")
    max_devices = config["evidence_max_devices"]
    rows = stage_outputs({"evidence": alert_evidence(detection, alerts, config)}, staging)["evidence"]
    run.timer.measure("evidence", started)
    report = build_report(spark, config, run, window, counts, checked, findings, alerts)
    report["history"] = alert_history.summary(previous, alerts)
    report["ledger"] = ledger_outcome.summary()
    started = run.timer.begin("report_page")
    stage_report_page(spark, staging, alert_page(report, alerts, rows, max_devices, config, run.command))
    run.timer.measure("report_page", started)  # in the published report, not on the page
    paths = publish(spark, staging, report, config["output"]["path"], run.run_date)
    paths["report_html"] = f"{paths['reports']}/{REPORT_PAGE}"
    if config["output"]["report_s3_url"]:
        paths["report_copy"] = s3.upload_report(
            config["aws"], config["output"]["report_s3_url"], run.run_date, report
        )
    return report, paths, spark.read.parquet(paths["alerts"])  # as published: staging is gone


@dataclass(frozen=True)
class Detection:
    """The frames of the detect and score steps: daily usage, the rules' evidence (its
    per-device summaries in ``evidence.devices``), the findings and the alerts (valued,
    ranked, with their history)."""

    daily: DataFrame
    evidence: rules.Evidence
    findings: DataFrame
    alerts: DataFrame


def detect_and_score(
    checked: Checked,
    window: RunWindow,
    config: dict[str, Any],
    previous: alert_history.PreviousRun,
    keep: Callable[[DataFrame, str], DataFrame],
) -> Detection:
    """Ledger -> daily usage -> evidence -> findings -> alerts -> value, rank and history.
    ``previous`` is the previous complete run's alerts (history).
    ``keep(frame, name)`` stores a frame the later steps read many times and returns the
    stored copy (the job stages it; ``jobs/debug.py`` caches it)."""
    installs = checked.used("install_event")
    daily = checked.tables["measurements"].transform(usage.daily_usage(window))
    evidence = rules.Evidence.build(daily, checked.used("measuring_component"), installs, window, config)
    # Stored once each: the rules, the score and the report then plan over small files
    # instead of the whole lineage behind them.
    evidence = replace(evidence, devices=keep(evidence.devices, "devices"))
    findings = keep(rules.detect(evidence, config), "findings")
    alerts = (
        rules.score(findings, evidence, config)
        .transform(alert_value.with_estimate(evidence.devices, config["peers"]))
        .transform(alert_value.with_value(config["tariffs"]))
        .transform(alert_value.ranked)
        .transform(alert_history.with_history(previous, window.run_date))
    )
    return Detection(daily, evidence, findings, alerts)


def alert_evidence(detection: Detection, alerts: DataFrame, config: dict[str, Any]) -> DataFrame:
    """The evidence rows of the ``evidence_max_devices`` highest-ranked of ``alerts`` (the
    detection's, or the copy the job staged, so the ranking is not computed again)."""
    return evidence_table(
        alerts, detection.evidence, detection.findings, config["evidence_max_devices"],
        config["peers"]["min_baseline_kwh"],
    )


def alert_page(
    report: dict[str, Any],
    alerts: DataFrame,
    evidence_rows: DataFrame,
    max_devices: int,
    config: dict[str, Any],
    command: str,
) -> str:
    """The run's HTML report: its summary, the ``max_devices`` highest-ranked alerts and their
    evidence (small, bounded frames: the only rows collected)."""
    top = [row.asDict(recursive=True) for row in alerts.where(F.col("rank") <= max_devices).orderBy("rank").collect()]
    return render_alerts_html(report, top, collect_rows(evidence_rows), config["tariffs"]["currency"], command)


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
            "config_values": redact(config),  # the whole merged config, secrets masked
            "input": config["input"],
            "output": config["output"],
            "window_start": window.window_start_date.isoformat(),
            "window_end": window.run_date.isoformat(),
            "baseline_start": window.baseline_start_date.isoformat(),
            "window_days": window.window_days,
            "baseline_days": window.baseline_days,
            "rules": config["rules"],  # the thresholds the alerts report quotes
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
    except PushFailed as error:  # unreachable, refused, unauthorized or malformed URL
        log.warning("metrics not pushed: %s", error)
    flush_logger(log)
    return exit_code


def print_summary(report: dict[str, Any], paths: dict[str, str], alerts: DataFrame) -> None:
    """What the run read and found, as aligned tables for a person at a terminal: rows per
    table and status, findings per rule, the top alerts, the published paths."""
    top = [row.asDict() for row in alerts.orderBy("rank").select(*SUMMARY_ALERT_COLUMNS, "currency")
           .limit(SUMMARY_TOP_ALERTS).collect()]
    currency = top[0]["currency"] if top else ""
    rows = [{"table": table, **entry} for table, entry in report["counts"].items()]
    findings = [{"rule": rule, "findings": number} for rule, number in report["findings_by_rule"].items()]
    print("\n\n".join([
        f"datalake run {report['run_id']} for {report['run_date']}: {report['alerts']} alerts",
        text_table(rows, ("table", "read", *SUMMARY_ROW_STATUSES)),
        text_table(findings, ("rule", "findings")),
        f"top {len(top)} of {report['alerts']} alerts (value in {currency}):\n"
        + text_table(top, SUMMARY_ALERT_COLUMNS, {"estimated_value": ",.2f"}),
        text_table([{"output": name, "path": path} for name, path in paths.items()], ("output", "path")),
    ]))


if __name__ == "__main__":
    sys.exit(main())
