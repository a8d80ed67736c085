"""Publishing one run date: staged, swapped in whole, and put back when a swap fails or is
killed."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dependencies import publish as publishing
from dependencies.publish import (
    HadoopFs,
    partition_path,
    publish,
    stage_outputs,
    stage_report_page,
    staging_directory,
)

RUN_DATE = date(2026, 11, 15)
OTHER_DATE = date(2026, 11, 14)


def outputs(spark: SparkSession, version: str) -> dict[str, DataFrame]:
    """A tiny, recognisable set of outputs: every row carries ``version``."""
    return {
        "alerts": spark.createDataFrame(
            [(f"D-{version}", 0.9, 1)], "device_id string, score double, rank int"
        ),
        "findings": spark.createDataFrame(
            [(f"D-{version}", "ZERO_RUNS"), (f"D-{version}", "DATA_GAP")],
            "device_id string, rule string",
        ),
        "rejects": spark.createDataFrame(
            [("device", "missing_required", json.dumps({"version": version}))],
            "table string, reason string, record string",
        ),
        "evidence": spark.createDataFrame(
            [(f"D-{version}", 1, RUN_DATE)], "device_id string, rank int, day date"
        ),
    }


def stage(
    spark: SparkSession, frames: dict[str, DataFrame], output: Path, run_date: date, run_id: str
) -> str:
    """Stage ``frames`` as one run's outputs; return its staging directory."""
    with staging_directory(spark, str(output), run_date, run_id) as staging:
        stage_outputs(frames, staging)
    return staging


def run(
    spark: SparkSession, output: Path, version: str, run_date: date = RUN_DATE
) -> dict[str, str]:
    """Stage and publish ``version``'s outputs for ``run_date``."""
    staging = stage(spark, outputs(spark, version), output, run_date, f"{run_date}-{version}")
    return publish(spark, staging, {"version": version}, str(output), run_date)


def assert_published(
    spark: SparkSession, output: Path, version: str, run_date: date = RUN_DATE
) -> None:
    """``run_date``'s published outputs and report are exactly those of ``version``."""
    for table, expected in outputs(spark, version).items():
        actual = spark.read.parquet(partition_path(str(output), table, run_date))
        assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    assert report(output, run_date) == {"version": version}


def report(output: Path, run_date: date = RUN_DATE) -> dict[str, Any] | None:
    """The published report of ``run_date``, or None while the date reads as incomplete."""
    path = Path(partition_path(str(output), "reports", run_date)) / "report.json"
    return json.loads(path.read_text()) if path.exists() else None


def assert_only_published_tables(output: Path) -> None:
    """The output path holds the published tables and nothing else (no ``_staging/``)."""
    assert sorted(entry.name for entry in output.iterdir()) == [
        "alerts",
        "evidence",
        "findings",
        "rejects",
        "reports",
    ]


def fail_rename(monkeypatch: pytest.MonkeyPatch, number: int) -> None:
    """Make the ``number``-th HadoopFs rename from now on fail (and only that one)."""
    real_rename = HadoopFs.rename
    calls = {"count": 0}

    def rename(self: HadoopFs, source: str, target: str) -> None:
        calls["count"] += 1
        if calls["count"] == number:
            raise OSError(f"injected: cannot rename {source}")
        real_rename(self, source, target)

    monkeypatch.setattr(HadoopFs, "rename", rename)


def test_rerun_replaces_only_its_run_date(spark: SparkSession, tmp_path: Path) -> None:
    # GIVEN run dates D (version v1) and D-1 (version other) published
    output = tmp_path / "output"
    run(spark, output, "v1")
    run(spark, output, "other", OTHER_DATE)

    # WHEN D is published again with version v2
    paths = run(spark, output, "v2")

    # THEN D holds exactly v2, D-1 is untouched, and no staging is left behind
    assert_published(spark, output, "v2")
    assert_published(spark, output, "other", OTHER_DATE)
    assert paths == {
        t: partition_path(str(output), t, RUN_DATE)
        for t in ("alerts", "findings", "rejects", "evidence", "reports")
    }
    assert_only_published_tables(output)


def test_failed_swap_puts_the_previous_outputs_back(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN D published as v1, and v2 staged
    output = tmp_path / "output"
    run(spark, output, "v1")
    staging = stage(spark, outputs(spark, "v2"), output, RUN_DATE, "run-v2")

    # WHEN the swap fails after the old report, alerts and findings were moved aside and
    # the new alerts moved in (the fifth rename: new findings)
    fail_rename(monkeypatch, 5)
    with pytest.raises(OSError, match="injected"):
        publish(spark, staging, {"version": "v2"}, str(output), RUN_DATE)
    monkeypatch.undo()

    # THEN D is v1 again, whole, and the failed run left nothing behind
    assert_published(spark, output, "v1")
    assert_only_published_tables(output)


def test_killed_swap_is_undone_by_the_next_run_even_if_that_is_interrupted(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN D published as v1, and a v2 run killed halfway through its swap (nothing of
    # that run survives to undo it: the in-process restore never runs)
    output = tmp_path / "output"
    run(spark, output, "v1")
    staging = stage(spark, outputs(spark, "v2"), output, RUN_DATE, "run-v2")
    fail_rename(monkeypatch, 5)
    monkeypatch.setattr(publishing, "restore", lambda *_: None)
    with pytest.raises(OSError, match="injected"):
        publish(spark, staging, {"version": "v2"}, str(output), RUN_DATE)
    monkeypatch.undo()
    # ... so D is half swapped, and reads as incomplete: its report is gone
    assert report(output) is None

    # WHEN the next run's restore is itself interrupted at its third rename, and a third run
    # then stages v3 (which restores first)
    fail_rename(monkeypatch, 3)
    with pytest.raises(OSError, match="injected"):
        publishing.restore(HadoopFs(spark, str(output)), str(output), RUN_DATE)
    monkeypatch.undo()
    staging = stage(spark, outputs(spark, "v3"), output, RUN_DATE, "run-v3")

    # THEN before v3 is swapped in, D is exactly v1 again; after, exactly v3
    assert_published(spark, output, "v1")
    publish(spark, staging, {"version": "v3"}, str(output), RUN_DATE)
    assert_published(spark, output, "v3")
    assert_only_published_tables(output)


def test_failed_staging_leaves_the_published_outputs_untouched(
    spark: SparkSession, tmp_path: Path
) -> None:
    # GIVEN D published as v1
    output = tmp_path / "output"
    run(spark, output, "v1")
    before = sorted(p.relative_to(output) for p in output.rglob("*"))

    # WHEN staging v2 fails while writing its second output
    failing = outputs(spark, "v2")["findings"].withColumn("rule", F.raise_error(F.lit("injected")))
    broken = {**outputs(spark, "v2"), "findings": failing}
    with pytest.raises(Exception, match="injected"):
        stage(spark, broken, output, RUN_DATE, "run-v2")

    # THEN D is v1 and the file tree is as before: the failed staging was removed
    assert_published(spark, output, "v1")
    assert sorted(p.relative_to(output) for p in output.rglob("*")) == before
    assert_only_published_tables(output)


def test_the_report_page_is_published_with_the_report(spark: SparkSession, tmp_path: Path) -> None:
    # GIVEN D staged with its HTML page beside the report
    output = tmp_path / "output"
    staging = stage(spark, outputs(spark, "v1"), output, RUN_DATE, "run-v1")
    stage_report_page(spark, staging, "<p>v1</p>")
    # WHEN published THEN the page is in D's report directory, and nothing is left in staging
    paths = publish(spark, staging, {"version": "v1"}, str(output), RUN_DATE)
    assert (Path(paths["reports"]) / "alerts.html").read_text() == "<p>v1</p>"
    assert report(output) == {"version": "v1"}
    assert_only_published_tables(output)
