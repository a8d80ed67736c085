"""debug_run: the job's own steps for a run date, every frame by name, and one device's path
through them (explain); nothing is written."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from chispa import assert_approx_df_equality
from conftest import RUN_DATE, SAMPLE_RUN_STARTED_AT, write_job_config
from pyspark.sql import SparkSession

from dependencies.publish import read_published
from dependencies.tables import TABLE_NAMES
from jobs.alerts.evidence import DAY_COLUMNS
from jobs.debug import Steps, debug_run

EXPLAIN_SECTIONS = (
    "device (checked)",
    "components (checked)",
    "install events (checked)",
    "readings on ",
    "intervals on ",
    "ledger on ",
    "daily usage in W",
    "summary (rule_inputs.devices)",
    "findings",
    "alert\n",
    "evidence rows in W",
)


@pytest.fixture(scope="module")
def debug_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where a debug run's config points its output: it must stay empty."""
    return tmp_path_factory.mktemp("debug_run") / "output"


@pytest.fixture(scope="module")
def steps(sample_published: Path, debug_output: Path) -> Steps:
    """debug_run on the same sample and run date, after the job's run."""
    config = write_job_config(debug_output.parent)
    return debug_run(RUN_DATE, config_path=str(config), run_started_at=SAMPLE_RUN_STARTED_AT)


def test_every_step_has_a_named_frame(steps: Steps) -> None:
    # WHEN the frames of the debug run are listed
    frames = steps.frames()
    # THEN every step of the job is there by name, and the checked tables carry their statuses
    assert list(frames) == [
        *[f"raw.{table}" for table in TABLE_NAMES],
        *[f"checked.{table}" for table in TABLE_NAMES],
        "intervals",
        "ledger",
        "daily",
        "rule_inputs.daily",
        "rule_inputs.devices",
        "rule_inputs.installs",
        "rule_inputs.components",
        "findings",
        "alerts",
        "alert_evidence",
    ]
    for table in TABLE_NAMES:
        assert "status" in frames[f"checked.{table}"].columns, table
    assert {"start", "end", "amount", "installed"} <= set(frames["intervals"].columns)
    assert steps.devices is steps.detection.rule_inputs.devices
    assert steps.alerts is steps["alerts"] is steps.scored.alerts


def test_the_frames_are_what_the_job_published(
    spark: SparkSession, steps: Steps, sample_published: Path
) -> None:
    # GIVEN the alerts and findings the job published for the run date
    published = {
        table: read_published(spark, str(sample_published), table, date.fromisoformat(RUN_DATE))
        for table in ("alerts", "findings", "evidence")
    }
    # THEN the debug run's frames hold the same rows
    assert_approx_df_equality(
        steps.alerts.orderBy("rank"), published["alerts"], 1e-12, ignore_nullable=True
    )
    days = DAY_COLUMNS
    assert_approx_df_equality(
        steps.alert_evidence.select(*days).orderBy("rank", "day"),
        published["evidence"].select(*days).orderBy("rank", "day"),
        1e-9,
        ignore_nullable=True,
    )
    assert_approx_df_equality(
        steps.findings.orderBy("device_id", "rule"),
        published["findings"],
        1e-12,
        ignore_nullable=True,
    )
    assert published["alerts"].count() > 0


def test_explain_prints_the_device_through_every_step(
    steps: Steps, debug_output: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN explain is called for the meter whose register was wound back on 2026-11-08
    steps.explain("K01")
    printed = capsys.readouterr().out
    # THEN each step has its section, in order, and the rows show the rollback
    positions = [printed.index(f"-- {section}") for section in EXPLAIN_SECTIONS]
    assert positions == sorted(positions)
    assert "-- readings on 2026-11-08" in printed
    assert "|4.8       |" in printed.split("-- intervals on")[1].split("-- ledger")[0]  # the fall
    assert "REGISTER_ROLLBACK" in printed.split("-- findings")[1]
    assert "(none)" not in printed.split("-- alert\n")[1]
    assert "|2026-11-08|window|" in printed.split("-- evidence rows in W")[1]
    # AND nothing was written where the config's output points
    assert not debug_output.exists()


def test_explain_of_a_device_without_alert_says_none(
    steps: Steps, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN explain is called for an honest meter
    steps.explain("R02")
    alert = capsys.readouterr().out.split("-- alert\n")[1]
    # THEN its alert and evidence sections say so
    assert alert.split("-- evidence rows in W")[0].strip() == "(none)"
    assert alert.split("-- evidence rows in W")[1].split("\n", 1)[1].strip() == "(none)"
