"""The job logger: record shape, console/file targets, redaction, and the log4j bridge."""

from __future__ import annotations

import copy
import inspect
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pyspark.sql import SparkSession

from dependencies.config import ConfigError, bundled_defaults, parse_config_text
from dependencies.logging import (
    CONSOLE_FIELDS,
    LOG4J_CONSOLE_APPENDER,
    LOGGER_NAME,
    REDACTED,
    bind_run_context,
    build_logger,
    flush_logger,
    redact,
)

RECORD_KEYS = [
    "timestamp",
    "level",
    "logger",
    "source",
    "message",
    "context",
    "fields",
    "exception",
]
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def logging_config(**targets: dict[str, Any]) -> dict[str, Any]:
    """The default ``logging`` section with every target off, then ``targets`` merged in."""
    config = copy.deepcopy(bundled_defaults()["logging"])
    for name in ("console", "file", "spark", "cloudwatch"):
        config[name]["enabled"] = False
    for name, settings in targets.items():
        config[name].update({"enabled": True, **settings})
    return config


@pytest.fixture
def make_logger() -> Iterator[Callable[..., logging.Logger]]:
    """Build the job logger; its handlers are closed after the test."""

    def make(config: dict[str, Any], spark: SparkSession | None = None) -> logging.Logger:
        return build_logger(config, bundled_defaults()["aws"], "datalake_job", spark)

    yield make
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON records in ``text``, skipping any other line."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def log_here(log: logging.Logger, message: str, **fields: Any) -> int:
    """Log ``message`` with ``fields`` at INFO from this function; return the call's line."""
    line = inspect.currentframe().f_lineno + 1
    log.info(message, extra=fields)
    return line


def test_every_record_has_one_shape_with_utc_time_source_context_and_fields(make_logger, capsys):
    # GIVEN a logger with JSON console lines and a bound run context
    log = make_logger(logging_config(console={"format": "json"}))
    bind_run_context(log, run_id="2026-11-15-abc", run_date="2026-11-15")
    before = datetime.now(UTC)

    # WHEN an event with fields and an event with an exception are logged
    line = log_here(log, "read 42 rows", table="device", rows=42)
    try:
        raise ValueError("bad value")
    except ValueError:
        log.exception("stage failed")

    # THEN each is one JSON object, with the same keys in the same order
    first, second = json_lines(capsys.readouterr().err)
    assert list(first) == RECORD_KEYS
    assert list(second) == RECORD_KEYS
    assert ISO_UTC.match(first["timestamp"])
    stamp = datetime.fromisoformat(first["timestamp"])
    assert before - timedelta(milliseconds=1) <= stamp <= datetime.now(UTC)
    assert (first["level"], second["level"]) == ("INFO", "ERROR")
    assert first["logger"] == "datalake"
    assert first["source"] == f"test_logging:log_here:{line}"
    assert second["source"].startswith("test_logging:test_every_record_has_one_shape")
    assert first["message"] == "read 42 rows"
    assert first["context"] == {
        "job": "datalake_job",
        "run_id": "2026-11-15-abc",
        "run_date": "2026-11-15",
        "spark_app_id": None,
    }
    assert first["fields"] == {"table": "device", "rows": 42}
    assert first["exception"] is None
    assert second["fields"] == {}
    assert second["exception"].startswith("Traceback")
    assert "ValueError: bad value" in second["exception"]


def test_console_text_lines_are_readable_and_respect_the_level(make_logger, capsys):
    # GIVEN a logger with text console lines at WARNING
    config = logging_config(console={"format": "text"})
    config["level"] = "WARNING"
    log = make_logger(config)
    bind_run_context(log, run_id="run-1")

    # WHEN an INFO and a WARNING event are logged
    log.info("not shown")
    log.warning("disk %s almost full", "/data", extra={"free_gb": 1.5})

    # THEN only the warning is written, as one readable line
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING test_logging:"
        r"test_console_text_lines_are_readable_and_respect_the_level:\d+ \[run-1\] "
        r"disk /data almost full free_gb=1\.5",
        lines[0],
    )


def test_secrets_never_reach_a_log_when_the_config_is_logged(make_logger, capsys, tmp_path):
    # GIVEN a config with secrets under secret-looking keys and in a URL, and one empty secret
    config = {
        "aws": {"region": "eu-west-1", "secret_access_key": "AKIA-SECRET-1", "session_token": ""},
        "spark": {"spark.hadoop.fs.s3a.secret.key": "SECRET-2", "spark.driver.memory": "2g"},
        "metrics": {"pushgateway_url": "https://ops:SECRET-3@push.example:9091"},
        "db": {"Password": 12345, "users": [{"api_key": "SECRET-4", "name": "etl"}]},
    }
    log = make_logger(
        logging_config(console={"format": "text"}, file={"path": str(tmp_path / "log.jsonl")})
    )

    # WHEN the config is logged to the console and the file
    log.info("run started", extra={"config": config})
    flush_logger(log)

    # THEN no secret appears in either, the other values do, and "not set" stays visible
    console = capsys.readouterr().err
    written = (tmp_path / "log.jsonl").read_text(encoding="utf-8")
    for text in (console, written):
        for secret in ("AKIA-SECRET-1", "SECRET-2", "SECRET-3", "SECRET-4", "12345"):
            assert secret not in text
        assert "eu-west-1" in text
    logged = json.loads(written)["fields"]["config"]
    assert logged == {
        "aws": {"region": "eu-west-1", "secret_access_key": REDACTED, "session_token": ""},
        "spark": {"spark.hadoop.fs.s3a.secret.key": REDACTED, "spark.driver.memory": "2g"},
        "metrics": {"pushgateway_url": f"https://ops:{REDACTED}@push.example:9091"},
        "db": {"Password": REDACTED, "users": [{"api_key": REDACTED, "name": "etl"}]},
    }
    assert config["aws"]["secret_access_key"] == "AKIA-SECRET-1"  # the caller's config is untouched


def test_redact_keeps_booleans_and_values_under_ordinary_keys():
    # GIVEN values under ordinary keys and a boolean under a secret-looking key
    config = {"create_key": True, "path": "s3a://bucket/x", "count": 3}

    # WHEN redacted
    # THEN nothing changes
    assert redact(config) == config


def test_file_target_writes_json_lines_rotated_by_size(make_logger, tmp_path):
    # GIVEN a file target of at most 2,000 bytes per file and two backups
    path = tmp_path / "logs" / "job.jsonl"
    log = make_logger(
        logging_config(file={"path": str(path), "max_bytes": 2000, "backup_count": 2})
    )

    # WHEN 60 events are logged
    for number in range(60):
        log.info("event %d", number, extra={"number": number})
    flush_logger(log)

    # THEN the file and two backups exist, each within the size, every line a record,
    # and the newest events are in the current file in order
    files = sorted(path.parent.iterdir())
    assert [file.name for file in files] == ["job.jsonl", "job.jsonl.1", "job.jsonl.2"]
    for file in files:
        assert file.stat().st_size <= 2000
    current = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert all(list(record) == RECORD_KEYS for record in current)
    numbers = [record["fields"]["number"] for record in current]
    assert numbers == list(range(60 - len(numbers), 60))


def test_a_target_that_cannot_start_is_reported_and_left_out(make_logger, capsys, tmp_path):
    # GIVEN a file target whose directory cannot be created (a file is in the way)
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("", encoding="utf-8")
    config = logging_config(console={"format": "json"}, file={"path": str(blocker / "job.jsonl")})

    # WHEN the logger is built and used
    log = make_logger(config)
    log.info("still logging")

    # THEN the problem is reported on stderr and the console target works
    err = capsys.readouterr().err
    assert "datalake logging: file target left out" in err
    assert [record["message"] for record in json_lines(err)] == ["still logging"]


def test_without_a_jvm_the_driver_log_target_falls_back_cleanly(make_logger, capsys):
    # GIVEN the Spark target enabled but no session (as in tests, or Spark Connect)
    config = logging_config(console={"format": "json"}, spark={})

    # WHEN the logger is built and used
    log = make_logger(config)
    log.info("after fallback")

    # THEN one record says the target was left out, and the other targets carry on
    messages = [record["message"] for record in json_lines(capsys.readouterr().err)]
    assert messages == [
        "log target left out: spark (no JVM reachable: Spark Connect or no session)",
        "after fallback",
    ]


def test_events_reach_the_spark_driver_log_through_log4j(spark, driver_log, make_logger, capsys):
    # GIVEN a logger writing to the console and to the driver's log4j log of a real session
    log = make_logger(logging_config(console={"format": "json"}, spark={}), spark)
    marker = uuid.uuid4().hex

    # WHEN events at three levels are logged
    log.debug("debug %s", marker)
    log.info("info %s", marker, extra={"rows": 7})
    log.warning("warning %s", marker)

    # THEN log4j wrote the same records as the console, at the logger's level, with the
    # Spark application id in their context
    console = json_lines(capsys.readouterr().err)
    driver = [
        record
        for record in json_lines(driver_log.read_text(encoding="utf-8"))
        if marker in record["message"]
    ]
    assert driver == console
    assert [record["message"] for record in driver] == [f"info {marker}", f"warning {marker}"]
    assert {record["context"]["spark_app_id"] for record in driver} == {
        spark.sparkContext.applicationId
    }


def log4j_appenders_reached(spark: SparkSession) -> list[str]:
    """The class names of the appenders a record of the log4j logger ``datalake`` reaches:
    its own, and its parents' while the loggers on the way are additive."""
    configuration = spark.sparkContext._jvm.org.apache.logging.log4j.LogManager.getContext(
        False
    ).getConfiguration()
    logger_config, reached = configuration.getLoggerConfig(LOGGER_NAME), []
    while logger_config is not None:
        reached += [
            appender.getClass().getName() for appender in logger_config.getAppenders().values()
        ]
        logger_config = logger_config.getParent() if logger_config.isAdditive() else None
    return sorted(reached)


def test_the_driver_log_skips_log4j_console_appenders_only_beside_our_console(
    spark, driver_log, make_logger, capsys
):
    # GIVEN Spark's log4j root logger printing to the terminal
    configuration = spark.sparkContext._jvm.org.apache.logging.log4j.LogManager.getContext(
        False
    ).getConfiguration()
    root = configuration.getRootLogger().getAppenders().values()
    assert [appender.getClass().getName() for appender in root] == [LOG4J_CONSOLE_APPENDER]

    # WHEN the logger writes to the driver log beside our console target
    make_logger(logging_config(console={"format": "text"}, spark={}), spark)
    beside_console = log4j_appenders_reached(spark)
    # ... and then to the driver log alone
    make_logger(logging_config(spark={}), spark)
    alone = log4j_appenders_reached(spark)

    # THEN beside the console its records reach the driver log's other appenders (here the
    # test's file) but no console appender: each event is once on the terminal;
    assert LOG4J_CONSOLE_APPENDER not in beside_console
    assert "org.apache.logging.log4j.core.appender.FileAppender" in beside_console
    # alone, they reach the terminal through log4j, once
    assert alone.count(LOG4J_CONSOLE_APPENDER) == 1
    assert "org.apache.logging.log4j.core.appender.FileAppender" in alone


def test_the_text_console_shows_the_console_fields_and_the_other_targets_the_fields(
    make_logger, capsys, tmp_path
):
    # GIVEN a text console and a file target
    path = tmp_path / "datalake.jsonl"
    log = make_logger(logging_config(console={"format": "text"}, file={"path": str(path)}))

    # WHEN an event carries a large field and a short console view of it (with a secret)
    whole = {"input": {"path": "in"}, "aws": {"secret_key": "hunter2"}}
    log.info(
        "run started",
        extra={"config": whole, CONSOLE_FIELDS: {"config_changes": {"aws.secret_key": "hunter2"}}},
    )
    flush_logger(log)

    # THEN the console line shows the short view, masked, and the file the whole field, masked
    line = capsys.readouterr().err.strip()
    assert line.endswith('run started config_changes={"aws.secret_key": "***"}')
    (written,) = json_lines(path.read_text(encoding="utf-8"))
    assert written["fields"] == {"config": {"input": {"path": "in"}, "aws": {"secret_key": "***"}}}


def test_the_log_level_is_validated_by_the_config():
    # GIVEN a config with an unknown log level
    text = json.dumps(
        {"input": {"path": "in"}, "output": {"path": "out"}, "logging": {"level": "LOUD"}}
    )

    # WHEN it is parsed
    # THEN it is a config error naming the key
    with pytest.raises(ConfigError, match=r"logging.level must be one of"):
        parse_config_text(text, "job.json")
