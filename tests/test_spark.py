"""start_spark: which settings apply where, and where the config comes from."""

from __future__ import annotations

import json
import os
import types
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from dependencies import jars
from dependencies.config import ConfigError
from dependencies.spark import (
    ADAPTIVE_EXECUTION,
    DRIVER_CLASS_PATH,
    LOCAL_MASTER,
    adaptive_execution_for_input,
    jobs_started,
    not_applied,
    not_applied_warnings,
    planned_bytes,
    session_builder,
    start_spark,
    uses_local_settings,
)

SCRIPT = types.SimpleNamespace(__file__="jobs/datalake_job.py")
REPL = types.SimpleNamespace()


@pytest.mark.parametrize(
    ("environ", "main_module", "local"),
    [
        ({"PYSPARK_GATEWAY_PORT": "4040"}, SCRIPT, False),  # spark-submit: the cluster's settings
        ({"PYSPARK_GATEWAY_PORT": "4040", "DEBUG": "1"}, SCRIPT, True),  # DEBUG=1 forces local
        ({"PYSPARK_GATEWAY_PORT": "4040", "DEBUG": "0"}, SCRIPT, False),
        ({"PYSPARK_GATEWAY_PORT": "4040"}, REPL, True),  # IPython / REPL
        ({}, SCRIPT, True),  # a plain python script
    ],
)
def test_context_decides_whose_settings_apply(
    environ: dict, main_module: object, local: bool
) -> None:
    assert uses_local_settings(environ, main_module) is local


def test_a_local_session_has_the_jobs_packages_on_its_class_path_and_delta_configured() -> None:
    # GIVEN a spark section with a class path of its own
    settings = {DRIVER_CLASS_PATH: "/opt/extra.jar"}
    # WHEN builders are made for a local session and for spark-submit
    local = session_builder("app", settings, True)._options
    submitted = session_builder("app", settings, False)._options
    # THEN the local driver finds Delta Lake's and S3A's jars first, then its own; under
    # spark-submit the class path is spark-submit's (--jars); both are Delta sessions
    assert local[DRIVER_CLASS_PATH] == f"{jars.class_path()}{os.pathsep}/opt/extra.jar"
    assert all(path.is_file() for path in jars.jar_paths(jars.DELTA_PACKAGES + jars.S3A_PACKAGES))
    assert DRIVER_CLASS_PATH not in submitted
    for options in (local, submitted):
        assert options["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"


def test_a_local_session_without_a_master_runs_on_every_core() -> None:
    assert session_builder("app", {}, True)._options["spark.master"] == LOCAL_MASTER == "local[*]"


def test_settings_a_submitted_session_lacks_are_named() -> None:
    # GIVEN a config's spark section and the settings spark-submit started the session with
    settings = {
        "spark.driver.memory": "8g",
        "spark.executor.cores": "2",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "8",
    }
    running = {"spark.driver.memory": "1g", "spark.executor.cores": "2"}
    # THEN the ones it started otherwise or without are named; Spark SQL ones apply anyway
    assert not_applied(settings, running) == ["spark.driver.memory", "spark.ui.enabled"]
    # ... unless the running session cannot take them (a static Spark SQL setting)
    static = {**settings, "spark.sql.codegen.cache.maxEntries": "5000"}
    assert not_applied(static, running, lambda key: key == "spark.sql.shuffle.partitions") == [
        "spark.driver.memory",
        "spark.sql.codegen.cache.maxEntries",
        "spark.ui.enabled",
    ]


def test_a_warning_names_a_secret_setting_but_never_its_value() -> None:
    # GIVEN an S3 secret and a memory setting the submitted session was started without
    settings = {"spark.hadoop.fs.s3a.secret.key": "s3cr3t-value", "spark.driver.memory": "8g"}
    # WHEN the warnings are written
    warnings = not_applied_warnings(settings, {})
    # THEN both settings are named, the memory with its value, the secret masked
    assert [w.split("]")[0] for w in warnings] == [
        "config setting spark[spark.driver.memory",
        "config setting spark[spark.hadoop.fs.s3a.secret.key",
    ]
    assert "pass --conf spark.driver.memory=8g to spark-submit" in warnings[0]
    assert "pass --conf spark.hadoop.fs.s3a.secret.key=*** to spark-submit" in warnings[1]
    assert not any("s3cr3t-value" in w for w in warnings)


def test_start_spark_with_explicit_config_applies_its_sql_settings(
    spark: SparkSession, write_config
) -> None:
    # GIVEN a config that sets a Spark SQL property, and a static one (fixed when the
    # session starts: set at runtime it would fail the run)
    path = write_config(
        {
            "spark": {
                "spark.sql.shuffle.partitions": "3",
                "spark.sql.codegen.cache.maxEntries": "4000",
            }
        }
    )
    try:
        # WHEN the job starts Spark with it
        session, logger, config = start_spark(config_path=str(path))
        # THEN it joins the running session, applies the runtime setting (the static one
        # stays as the session started), and returns config and logger
        assert session is spark
        assert spark.conf.get("spark.sql.shuffle.partitions") == "3"
        assert spark.conf.get("spark.sql.codegen.cache.maxEntries") == "5000"
        assert config["output"]["path"].endswith("output")
        assert logger.name == "datalake"
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", "2")


def test_start_spark_finds_config_shipped_with_files(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a config sent to the session like spark-submit --files does, and no other
    shipped = tmp_path / "shipped_config.json"
    shipped.write_text(json.dumps({"input": {"path": "/shipped"}, "output": {"path": "/o"}}))
    spark.sparkContext.addFile(str(shipped))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    # WHEN start_spark runs without --config
    _, _, config = start_spark()
    # THEN the shipped config is used
    assert config["input"]["path"] == "/shipped"


def test_start_spark_fails_loudly_on_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad_config.json"
    bad.write_text('{"input": {"path": "/in"}, "output": {"path": "/o"}, "alert_treshold": 0.5}')
    with pytest.raises(ConfigError, match=r"bad_config.json: unknown key alert_treshold"):
        start_spark(config_path=str(bad))


def test_jobs_started_counts_each_job_the_session_starts(spark: SparkSession) -> None:
    # GIVEN the count of jobs the suite's session has started so far
    before = jobs_started(spark)
    # WHEN three actions run, one Spark job each
    for _ in range(3):
        spark.sparkContext.parallelize([1, 2], 1).count()
    # THEN the count is three more
    assert jobs_started(spark) == before + 3


def test_adaptive_execution_set_in_the_config_is_kept(spark: SparkSession) -> None:
    # GIVEN a session with adaptive execution off, and a config whose spark section sets it
    before = spark.conf.get(ADAPTIVE_EXECUTION)
    frame = spark.createDataFrame([(1,)], "n int")
    # WHEN a run sizes Spark for an input above the limit
    chosen = adaptive_execution_for_input(spark, frame, 0, {ADAPTIVE_EXECUTION: before})
    # THEN nothing is chosen, and the session keeps its setting
    assert chosen is None
    assert spark.conf.get(ADAPTIVE_EXECUTION) == before


def test_planned_bytes_is_the_size_of_the_files_a_scan_reads(
    spark: SparkSession, tmp_path: Path
) -> None:
    # GIVEN a CSV file of known size
    path = tmp_path / "rows.csv"
    path.write_text("n\n1\n2\n", encoding="utf-8")
    # WHEN its scan's size is asked THEN it is the file's, read from the listing
    frame = spark.read.option("header", True).csv(str(path))
    assert planned_bytes(frame) == path.stat().st_size
