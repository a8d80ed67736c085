"""From the readings' ledger to ranked alerts: detect (daily usage -> the rules' inputs ->
findings), then score (alerts, valued, ranked and dated), and the evidence rows of the
highest-ranked alerts.

``materialize(frame, name)`` stores a frame that the later steps read many times and returns
the stored copy: the job stages it with the run's outputs, ``jobs/debug.py`` checkpoints it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame

from dependencies.run_window import RunWindow
from dependencies.transforms import Materialize
from jobs import rules
from jobs.alerts import history, value
from jobs.alerts.evidence import evidence_table
from jobs.inputs import ValidatedTables
from jobs.readings import ReadingsLedger


@dataclass(frozen=True)
class Detection:
    """The frames of the detect step: daily usage, what the rules read (``rule_inputs``:
    its per-device summaries in ``rule_inputs.devices``) and the findings."""

    daily: DataFrame
    rule_inputs: rules.RuleInputs
    findings: DataFrame


@dataclass(frozen=True)
class ScoredAlerts:
    """The alerts of the score step (valued, ranked, with their history), and the previous
    complete run they continue from."""

    alerts: DataFrame
    previous: history.PreviousRun


def detect(
    tables: ValidatedTables,
    ledger: ReadingsLedger,
    window: RunWindow,
    config: dict[str, Any],
    materialize: Materialize,
) -> Detection:
    """Ledger -> daily usage -> the rules' inputs -> findings."""
    daily = ledger.daily_usage(window)
    rule_inputs = rules.RuleInputs.build(
        daily, tables.used("measuring_component"), tables.used("install_event"), window, config
    )
    # Materialized once each: the rules, the score and the report then plan over small
    # files instead of the whole lineage behind them.
    rule_inputs = replace(rule_inputs, devices=materialize(rule_inputs.devices, "devices"))
    findings = materialize(rules.detect(rule_inputs, config), "findings")
    return Detection(daily, rule_inputs, findings)


def score(
    detection: Detection,
    previous: history.PreviousRun,
    window: RunWindow,
    config: dict[str, Any],
    materialize: Materialize,
) -> ScoredAlerts:
    """Findings -> alerts -> value, rank and history (``previous``: the previous complete
    run's alerts), materialized: the outputs, the evidence rows and the report read them."""
    devices = detection.rule_inputs.devices
    steps = (
        value.with_estimate(devices, config["peers"]),
        value.with_value(config["tariffs"]),
        value.ranked,
        history.with_history(previous, window.run_date),
    )
    alerts = rules.score(detection.findings, detection.rule_inputs, config)
    return ScoredAlerts(materialize(reduce(DataFrame.transform, steps, alerts), "alerts"), previous)


def alert_evidence(detection: Detection, alerts: DataFrame, config: dict[str, Any]) -> DataFrame:
    """The evidence rows of the ``evidence_max_devices`` highest-ranked of ``alerts`` (the
    scored alerts, or the copy the job staged, so the ranking is not computed again)."""
    return evidence_table(
        alerts,
        detection.rule_inputs,
        detection.findings,
        config["evidence_max_devices"],
        config["peers"]["min_baseline_kwh"],
    )
