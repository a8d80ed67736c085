"""Run metrics for schedulers and dashboards, pushed to a Prometheus Pushgateway.

The metrics are derived from the run's outcome and its report, so the report (always
written on success) and the Pushgateway (when ``metrics.pushgateway_url`` is set) tell the
same numbers. Pushes add to the job's group (HTTP POST), replacing only the metrics pushed:
a failed run updates ``datalake_run_success`` and ``datalake_last_failure_timestamp_seconds``
and keeps the last successful run's counts and ``datalake_last_success_timestamp_seconds``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

METRIC_PREFIX = "datalake"
ROW_COUNTS = ("read", "used", "rejected", "deduplicated", "outside_window")


def run_metrics(
    exit_code: int,
    started_at: float,
    finished_at: float,
    durations_seconds: Mapping[str, float],
    report: Mapping[str, Any] | None,
) -> CollectorRegistry:
    """The run's metrics: outcome, stage durations and, with a report, rows per table,
    findings per rule and alerts. ``started_at`` and ``finished_at``: seconds since the epoch."""
    registry = CollectorRegistry()

    def gauge(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"{METRIC_PREFIX}_{name}", documentation, labels, registry=registry)

    succeeded = exit_code == 0
    gauge("run_success", "1 if the last run succeeded, 0 if it failed").set(int(succeeded))
    gauge("run_exit_code", "exit code of the last run").set(exit_code)
    gauge("last_run_timestamp_seconds", "when the last run finished, seconds since the epoch").set(finished_at)
    gauge("run_duration_seconds", "wall-clock seconds of the last run").set(round(finished_at - started_at, 3))
    outcome = "success" if succeeded else "failure"
    gauge(f"last_{outcome}_timestamp_seconds", f"when the last {outcome} finished").set(finished_at)
    stage = gauge("stage_duration_seconds", "wall-clock seconds per stage of the last run", ("stage",))
    for name, seconds in durations_seconds.items():
        stage.labels(name).set(seconds)
    if report is not None:
        for count in ROW_COUNTS:
            rows = gauge(f"rows_{count}", f"input rows {count.replace('_', ' ')} per table", ("table",))
            for table, entry in report["counts"].items():
                rows.labels(table).set(entry[count])
        findings = gauge("findings", "findings per rule in the last run", ("rule",))
        for rule, number in report["findings_by_rule"].items():
            findings.labels(rule).set(number)
        gauge("alerts", "alerts raised by the last run").set(report["alerts"])
    return registry


def push_run_metrics(registry: CollectorRegistry, metrics_config: Mapping[str, Any]) -> bool:
    """Push to the configured Pushgateway under ``job=<metrics.job_name>``; False when no
    Pushgateway is configured. Errors propagate: the caller decides they do not fail the run."""
    if not metrics_config["pushgateway_url"]:
        return False
    pushadd_to_gateway(
        metrics_config["pushgateway_url"],
        job=metrics_config["job_name"],
        registry=registry,
        timeout=metrics_config["timeout_seconds"],
    )
    return True
