"""Start a Spark session that knows where it runs, and hand back the job's logger and config."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from pyspark import SparkFiles
from pyspark.sql import DataFrame, SparkSession

import __main__
from dependencies.config import find_config_file, load_config
from dependencies.jars import DELTA_SESSION_CONFIG, class_path
from dependencies.logging import build_logger, redact

# Whether PySpark records the Python call site of every column function a driver calls (an
# error's query context then names the line). It costs a few milliseconds per call: a run
# builds thousands of columns, and paid seconds of planning for them.
CALL_SITES = "spark.python.sql.dataFrameDebugging.enabled"
# The job reads its Delta tables by their partition column only: Delta's data skipping on
# per-file column statistics finds nothing to skip there, and planning it costs each
# replaceWhere commit and each read about a third of its time on small tables.
DELTA_DATA_SKIPPING = "spark.databricks.delta.stats.skipping"
# Settings that must hold in every context: timestamps are UTC everywhere, the published
# tables are Delta tables, and building a query costs no stack inspection nor data skipping.
REQUIRED_SPARK_CONFIG = {
    "spark.sql.session.timeZone": "UTC",
    **DELTA_SESSION_CONFIG,
    CALL_SITES: "false",
    DELTA_DATA_SKIPPING: "false",
}
# Where a local session finds the packages of dependencies/jars.py.
DRIVER_CLASS_PATH = "spark.driver.extraClassPath"
# The master of a local session whose config's ``spark`` section names none.
LOCAL_MASTER = "local[*]"
# Settings a running session still takes (the others are fixed when its JVM starts).
RUNTIME_PREFIX = "spark.sql."
# Spark's adaptive execution: it plans each query again after each of its stages (each stage
# then a Spark job of its own), which pays at scale and only costs on a tiny input.
ADAPTIVE_EXECUTION = "spark.sql.adaptive.enabled"
MIB = 1024**2


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
    app_name: str, spark_config: Mapping[str, str], local: bool
) -> SparkSession.Builder:
    """A builder: with ``local``, the config's ``spark`` settings (``spark.master``, else
    :data:`LOCAL_MASTER`; ``spark.jars.packages``, ``spark.files`` ...) and the job's
    packages on the driver's class path, otherwise only the app name and the settings every
    context needs (spark-submit supplies the rest, the packages with ``--jars``)."""
    builder = SparkSession.builder.appName(app_name)
    if local:
        builder = builder.master(spark_config.get("spark.master", LOCAL_MASTER))
        for key, value in spark_config.items():
            builder = builder.config(key, value)
        own = spark_config.get(DRIVER_CLASS_PATH)
        builder = builder.config(
            DRIVER_CLASS_PATH, os.pathsep.join(filter(None, (class_path(), own)))
        )
    for key, value in REQUIRED_SPARK_CONFIG.items():
        builder = builder.config(key, value)
    return builder


def is_runtime_sql(key: str) -> bool:
    """Whether a setting is a Spark SQL one (set on a running session, unless static)."""
    return key.startswith(RUNTIME_PREFIX)


def not_applied(
    spark_config: Mapping[str, str],
    running: Mapping[str, str],
    settable: Callable[[str], bool] = is_runtime_sql,
) -> list[str]:
    """The settings of ``spark_config`` that a session started elsewhere (spark-submit) has
    not taken: fixed at its start (not ``settable`` on the running session), and set
    otherwise there (``running``: its settings)."""
    return sorted(
        key
        for key, value in spark_config.items()
        if not settable(key) and running.get(key) != str(value)
    )


def start_spark(
    app_name: str = "datalake_job", config_path: str | None = None
) -> tuple[SparkSession, logging.Logger, dict[str, Any]]:
    """Start (or join) a Spark session and load the job's config and logger.

    The config comes from ``config_path`` when given, else from one ``*config.json`` sent with
    ``--files`` (SparkFiles), else from the working directory; anything else is an error.
    With an explicit path, the config's ``spark`` section builds a local session; its Spark
    SQL settings apply in every context. Under spark-submit, a setting of the section that
    the session was not started with is named in a warning: spark-submit's ``--conf`` sets it.
    """
    config = load_config(find_config_file(config_path, None)) if config_path else None
    local = uses_local_settings(os.environ, __main__)
    spark = session_builder(app_name, config["spark"] if config else {}, local).getOrCreate()
    if config is None:
        config = load_config(find_config_file(None, SparkFiles.getRootDirectory()))

    def settable(key: str) -> bool:
        return is_runtime_sql(key) and spark.conf.isModifiable(key)

    for key, value in config["spark"].items():
        if settable(key):
            spark.conf.set(key, value)
    logger = build_logger(config["logging"], config["aws"], app_name, spark)
    if not local:
        running = dict(spark.sparkContext.getConf().getAll())
        for warning in not_applied_warnings(config["spark"], running, settable):
            logger.warning(warning)
    return spark, logger, config


def not_applied_warnings(
    spark_config: Mapping[str, str],
    running: Mapping[str, str],
    settable: Callable[[str], bool] = is_runtime_sql,
) -> list[str]:
    """A warning per setting of :func:`not_applied`, naming the option that would apply it;
    a secret-looking setting's value is masked (it would reach every log target)."""
    return [
        f"config setting spark[{key}] is not applied: the session spark-submit started has "
        f"another value (pass --conf {key}={redact({key: spark_config[key]})[key]} to "
        "spark-submit)"
        for key in not_applied(spark_config, running, settable)
    ]


def jobs_started(spark: SparkSession) -> int:
    """How many Spark jobs the session's context has started so far (its job ids count up
    from 0; the newest are always among those its status tracker keeps). The highest id is
    found in the JVM: the tracker keeps up to a thousand ids, and Python would fetch them
    one call each."""
    ids = spark.sparkContext._jsc.statusTracker().getJobIdsForGroup(None)
    return spark._jvm.java.util.Arrays.stream(ids).max().orElse(-1) + 1


def planned_bytes(frame: DataFrame) -> int:
    """The size Spark's optimizer gives ``frame``: for a scan of files, the size of the files
    it reads, from the listing made when the frame was defined (no data is read)."""
    return int(frame._jdf.queryExecution().optimizedPlan().stats().sizeInBytes())


def adaptive_execution_for_input(
    spark: SparkSession, frame: DataFrame, min_input_mib: float, spark_config: Mapping[str, str]
) -> bool | None:
    """Turn the session's adaptive execution off when ``frame`` (the input that makes a
    run's size) is under ``min_input_mib`` MiB, on otherwise; return the setting made. None:
    left as it is, because ``spark_config`` (the config's ``spark`` section) or the session's
    own settings (spark-submit's ``--conf``) set it."""
    if ADAPTIVE_EXECUTION in spark_config or spark.sparkContext.getConf().contains(
        ADAPTIVE_EXECUTION
    ):
        return None
    adaptive = planned_bytes(frame) >= min_input_mib * MIB
    spark.conf.set(ADAPTIVE_EXECUTION, str(adaptive).lower())
    return adaptive
