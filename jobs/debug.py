"""A handle on every step of a run, for a REPL (``DEBUG=1 .venv/bin/ipython``).

``steps = debug_run("2026-11-15", config_path="configs/datalake_config.json")`` calls the
job's own steps for that run date (:mod:`jobs.inputs`: ``extract``, ``validate_tables``;
:mod:`jobs.ledger`: the readings checked and folded into the ledger, computed from every
reading; :mod:`jobs.readings`: ``materialized_in_order``; :mod:`jobs.detection`: ``detect``,
``score``), lazily, and returns every frame they make by name; ``steps.explain("K01")``
prints one device's rows through each step. Nothing is written: where the job stages a frame
to cut its lineage, the debug run checkpoints it in the executors' memory instead
(:func:`checkpoint`), so its plan is as short as the staged copy's.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType

from dependencies.run_window import RunWindow
from dependencies.spark import start_spark
from dependencies.tables import TABLE_NAMES
from jobs import rules, usage
from jobs.alerts import history
from jobs.alerts.evidence import PERIOD_NAMES
from jobs.detection import Detection, ScoredAlerts, alert_evidence, detect, score
from jobs.inputs import ValidatedTables, extract, readings_inputs, validate_tables
from jobs.ledger import Inputs, checked_readings
from jobs.ledger.update import unstored
from jobs.readings import ReadingsLedger, materialized_in_order
from jobs.run import run_start_instant

APP_NAME = "datalake_debug"
# Columns of a day that point at an event rule (W days where one is > 0 are shown first).
EVENT_COLUMNS = (
    "uninstalled_import_kwh",
    "rollback_kwh",
    "export_without_generation_kwh",
    "tamper_events",
)
READING_COLUMNS = ("measuring_component_id", "measured_at", "value", "status")
INTERVAL_COLUMNS = (
    "measuring_component_id",
    "status",
    "start",
    "end",
    "amount",
    "fallen_kwh",
    "installed",
    "is_gap",
    "zero_run_minutes",
)
DISPLAY_DECIMALS = 6
# The evidence rows an investigator's report draws, without the per-device arrays.
EVIDENCE_COLUMNS = (
    "rank",
    "day",
    "period",
    "has_data",
    "import_kwh",
    "export_kwh",
    "expected_daily_kwh",
)
DAY_COLUMNS = (
    "day",
    "period",
    "has_data",
    "import_kwh",
    "export_kwh",
    *EVENT_COLUMNS,
    "present_intervals",
    "longest_zero_run_minutes",
    "cv",
)


def readable(frame: DataFrame) -> DataFrame:
    """``frame`` with its doubles, and arrays of doubles, rounded to ``DISPLAY_DECIMALS``
    places: 0.2, not 0.20000000000004547."""
    columns = []
    for column in frame.schema.fields:
        value = F.col(column.name)
        if isinstance(column.dataType, DoubleType):
            value = F.round(value, DISPLAY_DECIMALS)
        elif isinstance(column.dataType, ArrayType) and isinstance(
            column.dataType.elementType, DoubleType
        ):
            value = F.transform(value, lambda element: F.round(element, DISPLAY_DECIMALS))
        columns.append(value.alias(column.name))
    return frame.select(*columns)


def checkpoint(frame: DataFrame, name: str) -> DataFrame:
    """``materialize`` of the job's steps for a debug run: compute the frame (``name``: what
    the job would stage it as) once into the executors' memory instead of writing it.

    A local checkpoint, not ``cache()``: a cached frame keeps its whole lineage in every plan
    that reads it, and the plans of the later steps (and their text, which Spark renders for
    every query) grow with it until the driver runs out of memory; a checkpointed frame is a
    leaf, as the staged copy is in the job."""
    return frame.localCheckpoint(eager=True)


@dataclass
class Steps:
    """Every frame of one run, by name (see :meth:`frames`), and :meth:`explain`.

    ``tables``: the four tables as read (``raw``) and the small ones with every row's
    ``status``; ``readings``: what the pass over the readings reads; ``checked_readings``:
    every reading with its status (before the ledger settles which early ones open the
    baseline); ``intervals``: each reading with the interval it closes; ``readings_ledger``:
    the readings folded per device and day; ``detection``: daily usage, the rules' inputs
    (``rule_inputs.devices``: one summary per device) and the findings; ``scored``: the
    alerts; as the job's steps made them."""

    spark: SparkSession
    config: dict[str, Any]
    window: RunWindow
    tables: ValidatedTables
    readings: Inputs
    checked_readings: DataFrame
    intervals: DataFrame
    readings_ledger: ReadingsLedger
    detection: Detection
    scored: ScoredAlerts

    def __getattr__(self, name: str) -> Any:
        """``steps.daily``, ``steps.rule_inputs``, ``steps.findings``, ``steps.alerts``: the
        frames of the detect and score steps."""
        for step in ("detection", "scored"):
            if step in self.__dict__ and hasattr(self.__dict__[step], name):
                return getattr(self.__dict__[step], name)
        raise AttributeError(name)

    @property
    def raw(self) -> dict[str, DataFrame]:
        """The four tables as read."""
        return self.tables.raw

    @property
    def ledger(self) -> DataFrame:
        """The readings' ledger (its rows), as the job computes it."""
        return self.readings_ledger.frame

    def checked(self, table: str) -> DataFrame:
        """Every row of ``table`` with its ``status`` (the readings: one row per reading)."""
        if table == "measurements":
            return self.checked_readings
        return self.tables.with_status(table)

    @property
    def devices(self) -> DataFrame:
        """The per-device summaries the rules read (``rule_inputs.devices``)."""
        return self.detection.rule_inputs.devices

    @property
    def alert_evidence(self) -> DataFrame:
        """The evidence rows of the highest-ranked alerts, as the job publishes them."""
        return alert_evidence(self.detection, self.scored.alerts, self.config)

    def frames(self) -> dict[str, DataFrame]:
        """Every frame, by name, in the order the job makes them."""
        named = {f"raw.{table}": frame for table, frame in self.raw.items()}
        named |= {f"checked.{table}": self.checked(table) for table in TABLE_NAMES}
        named |= {"intervals": self.intervals, "ledger": self.ledger}
        named["daily"] = self.detection.daily
        rule_inputs = self.detection.rule_inputs
        for part in fields(rule_inputs):
            if isinstance(getattr(rule_inputs, part.name), DataFrame):
                named[f"rule_inputs.{part.name}"] = getattr(rule_inputs, part.name)
        named |= {"findings": self.detection.findings, "alerts": self.scored.alerts}
        named["alert_evidence"] = self.alert_evidence
        return named

    def __getitem__(self, name: str) -> DataFrame:
        return self.frames()[name]

    def explain(self, device_id: str, rows: int = 24) -> None:
        """Print ``device_id``'s rows through each step: its device, component and install
        rows, its readings and intervals on the days that matter (W days with an event, else
        its W day of least import), its ledger and daily usage, its summary, findings,
        alert and the alert's evidence rows in W. Every frame is filtered to the device and
        cut to ``rows`` rows; numbers are rounded to ``DISPLAY_DECIMALS`` places."""
        days = self.days_to_show(self.detection.rule_inputs.daily.where(_device(device_id)))
        print(
            f"== {device_id}: run date {self.window.run_date}, W {self.window.window_start_date}.."
            f"{self.window.run_date}, B from {self.window.baseline_start_date}"
        )
        for title, frame, vertical in [
            *self.input_sections(device_id, days, rows),
            *self.detection_sections(device_id),
        ]:
            print(f"-- {title}")
            if frame.isEmpty():
                print("(none)\n")
            else:
                readable(frame).show(rows, truncate=False, vertical=vertical)

    def input_sections(
        self, device_id: str, days: list[date], rows: int
    ) -> list[tuple[str, DataFrame, bool]]:
        """(title, frame, shown vertically) of ``device_id``'s input rows, readings,
        intervals and ledger rows on ``days`` (of its first ``rows`` components)."""
        device = _device(device_id)
        components = self.checked("measuring_component").where(device)
        component_ids = [
            row[0] for row in components.select("measuring_component_id").limit(rows).collect()
        ]
        on_days = F.to_date("measured_at").isin(days)  # the UTC day (the session's is UTC)
        readings = self.checked_readings.where(F.col("measuring_component_id").isin(component_ids))
        intervals = intervals_of(self.readings, readings)
        shown = ", ".join(map(str, days))
        return [
            ("device (checked)", self.checked("device").where(device).drop("record"), False),
            ("components (checked)", components.drop("record"), False),
            (
                "install events (checked)",
                self.checked("install_event").where(device).drop("record"),
                False,
            ),
            (
                f"readings on {shown}",
                readings.where(on_days)
                .select(*READING_COLUMNS)
                .orderBy("measured_at", "measuring_component_id"),
                False,
            ),
            (
                f"intervals on {shown}",
                intervals.where(on_days)
                .select(*INTERVAL_COLUMNS)
                .orderBy("end", "measuring_component_id"),
                False,
            ),
            (
                f"ledger on {shown}",
                self.ledger.where(device & F.col("day").isin(days))
                .select("day", "status", "readings", "import_kwh", *EVENT_COLUMNS)
                .orderBy("day"),
                False,
            ),
        ]

    def detection_sections(self, device_id: str) -> list[tuple[str, DataFrame, bool]]:
        """(title, frame, shown vertically) of ``device_id``'s daily usage in W, summary,
        findings, alert and the alert's evidence rows in W."""
        device = _device(device_id)
        in_window = F.col("period") == rules.WINDOW
        daily = self.detection.rule_inputs.daily.where(device & in_window)
        evidence = self.alert_evidence.where(
            device & (F.col("period") == PERIOD_NAMES[rules.WINDOW])
        )
        return [
            ("daily usage in W", daily.select(*DAY_COLUMNS).orderBy("day"), False),
            ("summary (rule_inputs.devices)", self.devices.where(device), True),
            ("findings", self.detection.findings.where(device).orderBy("rule"), False),
            ("alert", self.scored.alerts.where(device), True),
            (
                "evidence rows in W (alert_evidence)",
                evidence.select(*EVIDENCE_COLUMNS).orderBy("day"),
                False,
            ),
        ]

    def days_to_show(self, daily: DataFrame) -> list[date]:
        """The W days of a device with an event (at most three), else its W day with data and
        the least import; none when it has no daily usage."""
        in_window = daily.where(F.col("period") == rules.WINDOW)
        events = in_window.where(
            F.greatest(*[F.coalesce(F.col(c), F.lit(0.0)) for c in EVENT_COLUMNS]) > 0
        )
        found = [row["day"] for row in events.orderBy("day").select("day").limit(3).collect()]
        if not found:
            least = (
                in_window.where("has_data")
                .orderBy("import_kwh", "day")
                .select("day")
                .limit(1)
                .collect()
            )
            found = [row["day"] for row in least]
        return found


def debug_run(
    run_date: str | date,
    config_path: str | None = "configs/datalake_config.json",
    run_started_at: datetime | None = None,
) -> Steps:
    """The job's steps for ``run_date`` on the config at ``config_path``: the ledger, the
    summaries and the findings are computed here, once (checkpointed); every other frame is
    computed when you look at it.
    ``run_started_at`` (default: now) is the instant after which a reading is a
    ``future_timestamp``. Joins the running session (or starts a local one, ``DEBUG=1``);
    reads the previous complete run's alerts from the output path (history), publishes nothing."""
    run_date = date.fromisoformat(run_date) if isinstance(run_date, str) else run_date
    spark, _, config = start_spark(app_name=APP_NAME, config_path=config_path)
    window = RunWindow.from_config(run_date, config)
    tables = validate_tables(extract(spark, config["input"], window), window)
    started_at = run_started_at or run_start_instant()
    readings = readings_inputs(tables, config["usage"], window, started_at)
    checked = checked_readings(readings)
    every_day = f"{window.read_start_date}..{window.run_date}"
    ledger, read_count, reuse = unstored(readings, every_day, "a debug run stores nothing")
    ledger = ReadingsLedger(materialized_in_order(ledger, checkpoint), read_count, reuse)
    detection = detect(tables, ledger, window, config, checkpoint)
    output = config["output"]["path"]
    previous = history.previous_run(spark, output, run_date, config["history_days"])
    scored = score(detection, previous, window, config, checkpoint)
    intervals = intervals_of(readings, checked)
    return Steps(
        spark, config, window, tables, readings, checked, intervals, ledger, detection, scored
    )


def _device(device_id: str) -> Column:
    return F.col("device_id") == device_id


def intervals_of(readings: Inputs, checked_readings: DataFrame) -> DataFrame:
    """``checked_readings`` (some of ``readings``), each used one with the interval it
    closes, its zero run and its install period, as the ledger's pass makes them."""
    return checked_readings.transform(
        usage.readings_intervals(
            readings.components,
            readings.installs,
            readings.usage_config,
            readings.window.read_start,
        )
    )
