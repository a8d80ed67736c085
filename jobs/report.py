"""What a run reports: the run report (JSON), its HTML page, and the terminal summary.

Only small, bounded results are collected here: counts, the top alerts and their evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dependencies.logging import redact
from dependencies.publish import ORDER
from dependencies.run_window import RunWindow
from dependencies.text_table import text_table
from dependencies.transforms import union_all
from jobs import rules
from jobs.alerts import history
from jobs.alerts.evidence import collect_rows
from jobs.alerts.page import render_alerts_html
from jobs.detection import Detection, ScoredAlerts
from jobs.inputs import ValidatedTables
from jobs.readings import ReadingsLedger
from jobs.run import Run

# The end-of-run summary: row statuses per table, the top alerts and their columns.
SUMMARY_ROW_STATUSES = ("used", "rejected", "deduplicated", "outside_window")
SUMMARY_ALERT_COLUMNS = ("rank", "device_id", "score", "estimated_value", "status", "rules")
SUMMARY_TOP_ALERTS = 10


@dataclass(frozen=True)
class RunResults:
    """What a run's steps returned, for the publish step: the run and its window, each
    table's row counts, and the results of validate, usage, detect and score."""

    run: Run
    window: RunWindow
    counts: dict[str, dict[str, Any]]
    tables: ValidatedTables
    ledger: ReadingsLedger
    detection: Detection
    scored: ScoredAlerts


def build_report(
    spark: SparkSession, config: dict[str, Any], results: RunResults
) -> dict[str, Any]:
    """The run report: parameters, per-table counts, the component types, the findings per
    rule, the alerts (as staged) and their history, what the ledger store reused, and the
    run's stage durations and Spark jobs.

    ``durations_seconds`` and ``spark_jobs`` are the run's timer's own records, so the report
    as published holds the stage that is still running when it is built (the publish stage)."""
    run, scored = results.run, results.scored
    tally = tallies(
        {
            "component_types": (results.tables.used("measuring_component"), "component_type"),
            "findings_by_rule": (results.detection.findings, "rule"),
            **history.summary_tallies(scored.previous, scored.alerts),
        }
    )
    return {
        "run_id": run.run_id,
        "run_date": run.run_date.isoformat(),
        "run_started_at": run.started_at.isoformat().replace("+00:00", "Z"),
        "parameters": _parameters(config, run, results.window),
        "counts": results.counts,
        # Types other than IMPORT_KWH, EXPORT_KWH and TAMPER_COUNT are kept and ignored.
        "component_types": dict(sorted(tally["component_types"].items())),
        "findings_by_rule": {rule: tally["findings_by_rule"].get(rule, 0) for rule in rules.RULES},
        "alerts": sum(tally[history.BY_STATUS].values()),
        "spark_application_id": spark.sparkContext.applicationId,
        "durations_seconds": run.timer.seconds,
        "spark_jobs": run.timer.jobs,  # per timed stage; the whole run's: its last log line
        "history": history.summary(scored.previous, tally),
        "ledger": results.ledger.reuse.summary(),
    }


def _parameters(config: dict[str, Any], run: Run, window: RunWindow) -> dict[str, Any]:
    """The run's parameters: its config (whole, secrets masked), input, output, window and
    the rules' thresholds (which the alerts report quotes)."""
    return {
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
    }


def tallies(groups: dict[str, tuple[DataFrame, str | None]]) -> dict[str, dict[Any, int]]:
    """Per name: its frame's rows per value of its column (all of them under ``None`` when
    the column is ``None``), every name's in one query."""
    counted: dict[str, dict[Any, int]] = {name: {} for name in groups}
    parts = [
        frame.groupBy((F.col(column) if column else F.lit(None)).cast("string").alias("value"))
        .count()
        .select(F.lit(name).alias("name"), "value", "count")
        for name, (frame, column) in groups.items()
    ]
    for row in union_all(parts).collect():
        counted[row["name"]][row["value"]] = row["count"]
    return counted


def top_alerts(alerts: DataFrame, config: dict[str, Any]) -> list[dict[str, Any]]:
    """The highest-ranked alerts the page and the summary show, as rows, in one small,
    bounded collect: the ``evidence_max_devices`` first, and at least the summary's."""
    shown = max(config["evidence_max_devices"], SUMMARY_TOP_ALERTS)
    top = alerts.where(F.col("rank") <= shown).collect()  # ordered here: no Spark sort
    return [row.asDict(recursive=True) for row in sorted(top, key=lambda row: row["rank"])]


def report_page(
    report: dict[str, Any],
    top: list[dict[str, Any]],
    evidence_rows: DataFrame,
    config: dict[str, Any],
    command: str,
) -> str:
    """The run's HTML report: its summary, the ``evidence_max_devices`` highest-ranked alerts
    (of ``top``, from :func:`top_alerts`) and their evidence."""
    return render_alerts_html(
        report,
        [alert for alert in top if alert["rank"] <= config["evidence_max_devices"]],
        collect_rows(evidence_rows),
        config["tariffs"]["currency"],
        command,
    )


def print_summary(report: dict[str, Any], paths: dict[str, str], top: list[dict[str, Any]]) -> None:
    """What the run read and found, as aligned tables for a person at a terminal: rows per
    table and status, findings per rule, the top alerts (of ``top``, ranked), the published
    paths."""
    top = top[:SUMMARY_TOP_ALERTS]
    currency = top[0]["currency"] if top else ""
    rows = [{"table": table, **entry} for table, entry in report["counts"].items()]
    findings = [
        {"rule": rule, "findings": number} for rule, number in report["findings_by_rule"].items()
    ]
    outputs = [
        {"output": name, "format": "delta" if name in ORDER else "file", "path": path}
        for name, path in paths.items()
    ]
    found = f"{report['alerts']} alerts"
    print(
        "\n\n".join(
            [
                f"datalake run {report['run_id']} for {report['run_date']}: {found}",
                text_table(rows, ("table", "read", *SUMMARY_ROW_STATUSES)),
                text_table(findings, ("rule", "findings")),
                f"top {len(top)} of {report['alerts']} alerts (value in {currency}):\n"
                + text_table(top, SUMMARY_ALERT_COLUMNS, {"estimated_value": ",.2f"}),
                text_table(outputs, ("output", "format", "path")),
            ]
        )
    )
