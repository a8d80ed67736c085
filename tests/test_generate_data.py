"""The generator: contract-valid tables, deterministic from its seed, planted cases as stated."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from dependencies.config import bundled_defaults
from dependencies.run_window import RunWindow
from jobs.inputs import SMALL_TABLES, extract, readings_inputs, validate_tables
from jobs.ledger import checked_readings
from jobs.tools.generate_data import (
    CASES,
    GROUND_TRUTH,
    HONEST,
    HONEST_EVENTS,
    PARTIAL_CASES,
    SLOTS_PER_DAY,
    Generator,
    GeneratorSettings,
    generate,
)
from jobs.validate import USED

# Small, but with every planted case and every honest event on several sites.
SETTINGS = GeneratorSettings(
    devices=60,
    seed=3,
    format="csv",
    case_shares=dict.fromkeys(CASES, 0.06),
    partial_shares=dict.fromkeys(PARTIAL_CASES, 0.03),
    honest_event_shares=dict.fromkeys(HONEST_EVENTS, 0.12),
)
WINDOW = RunWindow.from_config(SETTINGS.run_date, bundled_defaults())


@pytest.fixture(scope="module")
def generated(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated dataset (CSV) for the module's tests."""
    output = tmp_path_factory.mktemp("generated")
    generate(spark, GeneratorSettings(**{**SETTINGS.__dict__, "output": str(output)}), WINDOW)
    return output


def ground_truth(spark: SparkSession, path: Path) -> DataFrame:
    return spark.read.option("header", True).option("escape", '"').csv(str(path / GROUND_TRUTH))


def import_amounts(spark: SparkSession, path: Path, device_id: str) -> DataFrame:
    """Per reading of a device's CUMULATIVE import register: the interval's start and end
    and the register's rise since the previous reading."""
    readings = (
        spark.read.option("header", True)
        .csv(str(path / "measurements"))
        .where(F.col("measuring_component_id") == f"{device_id}-IMP")
    )
    by_time = Window.orderBy("measured_at")
    return (
        readings.select(
            F.col("measured_at").cast("timestamp").alias("measured_at"),
            F.col("value").cast("double").alias("value"),
        )
        .select(
            "measured_at",
            F.lag("measured_at").over(by_time).alias("start"),
            (F.col("value") - F.lag("value").over(by_time)).alias("rise"),
        )
        .where(F.col("start").isNotNull())
    )


def test_every_generated_row_passes_the_jobs_validation(
    spark: SparkSession, generated: Path
) -> None:
    # GIVEN a generated dataset, read and validated as the job does
    raw = extract(spark, {"path": str(generated), "format": "csv"}, WINDOW)
    small_tables = validate_tables(raw, WINDOW)
    readings = readings_inputs(small_tables, bundled_defaults()["usage"], WINDOW, datetime.now(UTC))
    checked = {
        **{table: small_tables.with_status(table) for table in SMALL_TABLES},
        "measurements": checked_readings(readings),
    }
    # WHEN each table's rows are counted by status
    statuses = {
        table: {row["status"]: row["count"] for row in frame.groupBy("status").count().collect()}
        for table, frame in checked.items()
    }
    # THEN every row of every table is used: nothing rejected, duplicated or outside B and W
    assert {table: set(counts) for table, counts in statuses.items()} == {
        key: {USED} for key in statuses
    }
    assert statuses["measurements"][USED] > SETTINGS.devices * SLOTS_PER_DAY * 40


def test_ground_truth_names_every_device_and_case(spark: SparkSession, generated: Path) -> None:
    # GIVEN the ground truth and the device table
    truth = ground_truth(spark, generated)
    devices = spark.read.option("header", True).csv(str(generated / "device"))
    # THEN it has one row per device, and every planted case and honest event occurs
    assert sorted(r["device_id"] for r in truth.collect()) == sorted(
        r["device_id"] for r in devices.collect()
    )
    assert {r["case"] for r in truth.select("case").distinct().collect()} == {*CASES, HONEST}
    events = {r["honest_event"] for r in truth.select("honest_event").distinct().collect()}
    assert events == {*HONEST_EVENTS, None}
    # AND partial thieves: h1 and h3 with their α in (0.5, 0.8]
    partial = truth.where(F.col("case").isin(*PARTIAL_CASES)).select(
        "case", F.get_json_object("parameters", "$.alpha").cast("double").alias("alpha")
    )
    assert {r["case"] for r in partial.where(F.col("alpha") > 0.5).collect()} == set(PARTIAL_CASES)


def test_an_exchanged_meter_hands_over_to_its_replacement(
    spark: SparkSession, generated: Path
) -> None:
    # GIVEN the install periods of the exchanged sites (old meter Mxxxxxxx, new one MxxxxxxxR)
    installs = spark.read.option("header", True).csv(str(generated / "install_event"))
    new = installs.where(F.col("device_id").endswith("R")).select(
        "service_point_id", F.col("installed_at").alias("new_installed_at")
    )
    old = installs.where(~F.col("device_id").endswith("R")).select(
        "service_point_id", F.col("removed_at").alias("old_removed_at")
    )
    # WHEN the two periods of each service point are put side by side
    pairs = new.join(old, "service_point_id")
    # THEN the new meter is installed exactly when the old one is removed
    assert pairs.count() == new.count() > 0
    assert pairs.where(F.col("new_installed_at") != F.col("old_removed_at")).count() == 0


def test_h5_reads_the_days_mean_in_w_and_a_rollback_falls_once(
    spark: SparkSession, generated: Path
) -> None:
    # GIVEN one h5 device and one wound-back device with CUMULATIVE registers
    truth = ground_truth(spark, generated).where(F.col("reading_type") == "CUMULATIVE")
    h5 = truth.where(F.col("case") == "h5").first()["device_id"]
    rolled = truth.where(F.col("case") == "REGISTER_ROLLBACK").first()["device_id"]
    # WHEN their interval amounts are read off the registers
    quarter_hours = F.col("measured_at") - F.col("start") == F.expr("INTERVAL 15 MINUTES")
    h5_days = (
        import_amounts(spark, generated, h5)
        .where(quarter_hours)
        .groupBy(F.to_date("start").alias("day"))
        .agg((F.max("rise") - F.min("rise")).alias("spread"), F.avg("rise").alias("mean"))
    )
    falls = import_amounts(spark, generated, rolled).where(F.col("rise") < 0)
    # THEN every day of W is flat (to the register's 1 Wh resolution; a lost reading makes a
    # longer interval, left out) and B's days are not
    w_start = WINDOW.window_start_date
    assert h5_days.where((F.col("day") >= w_start) & (F.col("spread") > 0.002)).count() == 0
    assert h5_days.where((F.col("day") < w_start) & (F.col("spread") > 0.01)).count() > 20
    # AND the wound-back register falls exactly once, in W
    assert [row["start"].date() >= w_start for row in falls.collect()] == [True]


def test_the_same_seed_gives_the_same_population(spark: SparkSession) -> None:
    # GIVEN the site tables of two generators with the same seed, and one with another seed
    def sites(seed: int) -> DataFrame:
        settings = GeneratorSettings(**{**SETTINGS.__dict__, "seed": seed})
        return Generator(spark, settings, WINDOW).sites()

    # THEN the same seed gives the same sites, another seed other sites
    assert_df_equality(sites(3), sites(3))
    assert sites(3).exceptAll(sites(4)).count() == SETTINGS.devices


def test_ground_truth_records_the_energy_each_attack_hid(
    spark: SparkSession, generated: Path
) -> None:
    # GIVEN the ground truth's hidden energy per device
    truth = ground_truth(spark, generated).select(
        "device_id", "case", F.col("hidden_kwh").cast("double")
    )
    hidden = {r["device_id"]: (r["case"], r["hidden_kwh"]) for r in truth.collect()}
    # THEN honest devices have none recorded; attacks that move or replay energy without
    # taking it (h5: the day's mean, h6: the day reversed, a tamper counter) hide ~0 kWh;
    # every other planted case hides energy
    assert {kwh for case, kwh in hidden.values() if case == HONEST} == {None}
    timing = [kwh for case, kwh in hidden.values() if case in ("h5", "h6", "TAMPER_EVENTS")]
    assert timing
    assert max(abs(kwh) for kwh in timing) < 1e-6
    taking = [
        kwh for case, kwh in hidden.values() if case not in (HONEST, "h5", "h6", "TAMPER_EVENTS")
    ]
    assert len(taking) >= 8
    assert min(taking) > 0.5
