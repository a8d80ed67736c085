"""The publish step: the run's outputs staged, then published for its run date in one go.

:func:`stage_run` writes every output under the run's staging directory (alerts, findings,
rejects, the evidence rows of the highest-ranked alerts), builds the report and renders the
HTML page; :func:`publish_run` then commits them (one Delta commit per table, the report
last as the date's completion marker) and copies the report to S3 when configured.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from dependencies import s3
from dependencies.fence import NO_FENCE, Fence
from dependencies.publish import REPORT_PAGE, publish, stage_outputs, stage_report_page
from jobs.detection import alert_evidence
from jobs.inputs import rejects
from jobs.report import RunResults, build_report, report_page, top_alerts
from jobs.run import Run


@dataclass(frozen=True)
class StagedRun:
    """What :func:`stage_run` staged: the output tables (as staged), the run report (to
    publish), and the highest-ranked alerts as rows (for the summary)."""

    tables: dict[str, DataFrame]
    report: dict[str, Any]
    top: list[dict[str, Any]]


@dataclass(frozen=True)
class Published:
    """The report as published, the published paths and the highest-ranked alerts (rows)."""

    report: dict[str, Any]
    paths: dict[str, str]
    top: list[dict[str, Any]]


def stage_run(
    spark: SparkSession, staging: str, config: dict[str, Any], results: RunResults
) -> StagedRun:
    """Stage the outputs, then the evidence rows of the highest-ranked alerts (from the
    staged alerts: the ranking is not computed again), the report and its page."""
    detection, run = results.detection, results.run
    outputs = {
        "alerts": results.scored.alerts,
        "findings": detection.findings,
        "rejects": rejects(results.tables, results.ledger.frame),
    }
    tables = stage_outputs(outputs, staging)
    staged = replace(results.scored, alerts=tables["alerts"])
    evidence = alert_evidence(detection, staged.alerts, config)
    tables.update(stage_outputs({"evidence": evidence}, staging))
    report = build_report(spark, config, replace(results, scored=staged))
    top = top_alerts(staged.alerts, config)
    page = report_page(report, top, tables["evidence"], config, run.command)
    stage_report_page(spark, staging, page)
    return StagedRun(tables, report, top)


def publish_run(
    spark: SparkSession,
    staging: str,
    staged: StagedRun,
    config: dict[str, Any],
    run: Run,
    fence: Fence = NO_FENCE,
) -> Published:
    """Publish what ``staged`` stands for (``fence`` checks each commit); copy the report
    to ``output.report_s3_url`` when set."""
    paths, report = publish(
        spark, staging, staged.tables, staged.report, config["output"]["path"], run.run_date, fence
    )
    paths["report_html"] = f"{paths['reports']}/{REPORT_PAGE}"
    if config["output"]["report_s3_url"]:
        paths["report_copy"] = s3.upload_report(
            config["aws"], config["output"]["report_s3_url"], run.run_date, report
        )
    return Published(report, paths, staged.top)
