"""From the readings' ledger to ranked alerts: usage -> detect -> score -> value, rank and
history, and the evidence rows of the highest-ranked alerts.

``keep(frame, name)`` stores a frame that the later steps read many times and returns the
stored copy: the job stages it with the run's outputs, ``jobs/debug.py`` checkpoints it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pyspark.sql import DataFrame

from dependencies.run_window import RunWindow
from dependencies.tables import read_failures_named
from jobs import rules, usage
from jobs.alerts import history, value
from jobs.alerts.evidence import evidence_table
from jobs.inputs import Checked

Keep = Callable[[DataFrame, str], DataFrame]


@dataclass(frozen=True)
class Detection:
    """The frames of the detect and score steps: daily usage, the rules' evidence (its
    per-device summaries in ``evidence.devices``), the findings and the alerts (valued,
    ranked, with their history)."""

    daily: DataFrame
    evidence: rules.Evidence
    findings: DataFrame
    alerts: DataFrame


def kept_ledger(ledger: DataFrame, keep: Keep) -> DataFrame:
    """Compute the ledger once (the run's only pass over the readings), keep it, and
    continue from the kept copy.

    It is kept in one order, whatever it was merged from (days kept in the store or
    computed now): the rules then add up the same numbers in the same order, so a run
    that reuses stored days publishes exactly what a full run does, to the last bit."""
    in_order = ledger.repartition("device_id").sortWithinPartitions(*usage.LEDGER_KEYS)
    with read_failures_named("measurements"):
        return keep(in_order, "readings_ledger")


def detect_and_score(
    checked: Checked,
    window: RunWindow,
    config: dict[str, Any],
    previous: history.PreviousRun,
    keep: Keep,
) -> Detection:
    """Ledger (``checked.tables["measurements"]``) -> daily usage -> evidence -> findings ->
    alerts -> value, rank and history (``previous``: the previous complete run's alerts)."""
    daily = checked.tables["measurements"].transform(usage.daily_usage(window))
    evidence = rules.Evidence.build(
        daily, checked.used("measuring_component"), checked.used("install_event"), window, config
    )
    # Kept once each: the rules, the score and the report then plan over small files
    # instead of the whole lineage behind them.
    evidence = replace(evidence, devices=keep(evidence.devices, "devices"))
    findings = keep(rules.detect(evidence, config), "findings")
    alerts = (
        rules.score(findings, evidence, config)
        .transform(value.with_estimate(evidence.devices, config["peers"]))
        .transform(value.with_value(config["tariffs"]))
        .transform(value.ranked)
        .transform(history.with_history(previous, window.run_date))
    )
    return Detection(daily, evidence, findings, alerts)


def alert_evidence(detection: Detection, alerts: DataFrame, config: dict[str, Any]) -> DataFrame:
    """The evidence rows of the ``evidence_max_devices`` highest-ranked of ``alerts`` (the
    detection's, or the copy the job staged, so the ranking is not computed again)."""
    return evidence_table(
        alerts,
        detection.evidence,
        detection.findings,
        config["evidence_max_devices"],
        config["peers"]["min_baseline_kwh"],
    )
