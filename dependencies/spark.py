"""Start a Spark session that knows where it runs, and hand back the job's logger and config."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark import SparkFiles
from pyspark.sql import SparkSession

import __main__
from dependencies.config import find_config_file, load_config
from dependencies.logging import build_logger

# Settings that must hold in every context: timestamps are UTC everywhere.
REQUIRED_SPARK_CONFIG = {"spark.sql.session.timeZone": "UTC"}


def uses_local_settings(environ: Mapping[str, str], main_module: object) -> bool:
    """True in an interactive session, with ``DEBUG`` set, or outside spark-submit.

    spark-submit starts the JVM first and hands Python its gateway through
    ``PYSPARK_GATEWAY_PORT``; there the cluster's own settings apply.
    """
    interactive = not hasattr(main_module, "__file__")
    debug = environ.get("DEBUG", "") not in ("", "0")
    under_spark_submit = "PYSPARK_GATEWAY_PORT" in environ
    return interactive or debug or not under_spark_submit


def session_builder(
    app_name: str,
    master: str,
    jar_packages: Sequence[str],
    files: Sequence[str],
    spark_config: Mapping[str, str],
    local: bool,
) -> SparkSession.Builder:
    """A builder: with ``local`` every argument applies, otherwise only the app name and the
    settings every context needs (spark-submit supplies master, files and packages)."""
    builder = SparkSession.builder.appName(app_name)
    if local:
        builder = builder.master(master)
        if jar_packages:
            builder = builder.config("spark.jars.packages", ",".join(jar_packages))
        if files:
            builder = builder.config("spark.files", ",".join(files))
        for key, value in spark_config.items():
            builder = builder.config(key, value)
    for key, value in REQUIRED_SPARK_CONFIG.items():
        builder = builder.config(key, value)
    return builder


def start_spark(
    app_name: str = "datalake_job",
    master: str = "local[*]",
    jar_packages: Sequence[str] = (),
    files: Sequence[str] = (),
    spark_config: Mapping[str, str] | None = None,
    config_path: str | None = None,
) -> tuple[SparkSession, logging.Logger, dict[str, Any]]:
    """Start (or join) a Spark session and load the job's config and logger.

    The config comes from ``config_path`` when given, else from one ``*config.json`` sent with
    ``--files`` (SparkFiles), else from the working directory; anything else is an error.
    With an explicit path, the config's ``spark`` section is applied to a local session
    (``spark_config`` wins on conflicts); Spark SQL settings from it apply in every context.
    """
    config = load_config(find_config_file(config_path, None)) if config_path else None
    local = uses_local_settings(os.environ, __main__)
    settings = {**(config["spark"] if config else {}), **(spark_config or {})}
    spark = session_builder(app_name, master, jar_packages, files, settings, local).getOrCreate()
    if config is None:
        config = load_config(find_config_file(None, SparkFiles.getRootDirectory()))
    for key, value in config["spark"].items():
        if key.startswith("spark.sql.") and key not in (spark_config or {}):
            spark.conf.set(key, value)
    logger = build_logger(config["logging"], config["aws"], app_name, spark)
    return spark, logger, config
