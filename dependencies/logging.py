"""The job's logger: every event is one structured record, written to any subset of targets.

A record carries a UTC ISO-8601 timestamp, the level, the logger's name, its source
(``module:function:line``), the message, the run context (job, run id, run date, Spark
application id) and the fields passed with the call (``log.info("...", extra={...})``), with
anything that looks like a secret masked. A call may pass ``console_fields`` in ``extra``: the
text console shows those instead of the fields (e.g. what differs from a default instead of
a whole config); every other target gets the fields. Targets, each configured under ``logging``:

- ``console``: stderr, human-readable lines (``text``) or JSON lines (``json``);
- ``file``: JSON lines, rotated by size;
- ``spark``: JSON lines into the driver's log4j log, beside Spark's own lines; left out
  where no JVM is reachable (Spark Connect, no session). With the console target on, these
  lines skip log4j's console appenders: each event is on the terminal once;
- ``cloudwatch``: AWS CloudWatch Logs (``dependencies/cloudwatch.py``).

Logging never fails the job: a target that cannot be set up or stops working is reported
once on stderr and left out.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dependencies.cloudwatch import CloudWatchLogsHandler, logs_client
from dependencies.progress import whole_lines

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOGGER_NAME = "datalake"
CONTEXT_KEYS = ("job", "run_id", "run_date", "spark_app_id")
REDACTED = "***"
# A key naming one of these holds a secret; its value never reaches a log.
SECRET_KEY = re.compile(r"password|passwd|pwd|secret|token|credential|key", re.IGNORECASE)
# The password in a URL's user info: scheme://user:password@host.
URL_PASSWORD = re.compile(r"(://[^:/@\s]+):[^@/\s]+@")
# Passed in ``extra``: what the text console shows instead of the record's fields.
CONSOLE_FIELDS = "console_fields"
# Attributes every LogRecord has; any other attribute is a field passed with the call.
RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "run_context",
    CONSOLE_FIELDS,
}
# log4j appenders that print to the terminal (System.out / System.err).
LOG4J_CONSOLE_APPENDER = "org.apache.logging.log4j.core.appender.ConsoleAppender"
LOG4J_LEVELS = (
    (logging.CRITICAL, "FATAL"),
    (logging.ERROR, "ERROR"),
    (logging.WARNING, "WARN"),
    (logging.INFO, "INFO"),
    (logging.NOTSET, "DEBUG"),
)


def report_problem(message: str) -> None:
    """Tell the operator about a logging problem on stderr, bypassing the logger itself."""
    print(f"datalake logging: {message}", file=sys.stderr, flush=True)


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` in which values under secret-looking keys and passwords in URLs
    are masked. Empty values stay visible, so "not set" is still told apart from "set"."""
    if key and SECRET_KEY.search(key) and value not in (None, "") and not isinstance(value, bool):
        return REDACTED
    if isinstance(value, Mapping):
        return {name: redact(item, str(name)) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return URL_PASSWORD.sub(rf"\1:{REDACTED}@", value)
    return value


def utc_timestamp(created: float) -> str:
    """``created`` (seconds since the epoch) as ISO-8601 UTC with milliseconds."""
    return (
        datetime.fromtimestamp(created, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class RunContextFilter(logging.Filter):
    """Stamps each record with the run context; shared by all of a logger's targets."""

    def __init__(self, job: str) -> None:
        super().__init__()
        self.context: dict[str, str | None] = dict.fromkeys(CONTEXT_KEYS)
        self.context["job"] = job

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "run_context"):
            record.run_context = dict(self.context)
        return True


def event_record(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    """The structured record of one event; every event has exactly these keys."""
    exception = None
    if record.exc_info:
        record.exc_text = record.exc_text or formatter.formatException(record.exc_info)
    if record.exc_text:
        exception = record.exc_text
    fields = {
        name: value for name, value in record.__dict__.items() if name not in RECORD_ATTRIBUTES
    }
    return {
        "timestamp": utc_timestamp(record.created),
        "level": record.levelname,
        "logger": record.name,
        "source": f"{record.module}:{record.funcName}:{record.lineno}",
        "message": record.getMessage(),
        "context": getattr(record, "run_context", dict.fromkeys(CONTEXT_KEYS)),
        "fields": redact(fields),
        "exception": exception,
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(event_record(record, self), default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``timestamp LEVEL source [run id] message key=value ...`` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        event = event_record(record, self)
        run = f" [{event['context']['run_id']}]" if event["context"].get("run_id") else ""
        shown = (
            redact(record.console_fields) if hasattr(record, CONSOLE_FIELDS) else event["fields"]
        )
        fields = "".join(
            f" {name}={json.dumps(value, default=str, ensure_ascii=False)}"
            for name, value in shown.items()
        )
        line = (
            f"{event['timestamp']} {event['level']:<7} {event['source']}{run} "
            f"{event['message']}{fields}"
        )
        return f"{line}\n{event['exception']}" if event["exception"] else line


def driver_jvm(spark: SparkSession | None) -> Any | None:
    """The driver's JVM gateway, or None where there is none (no session, Spark Connect)."""
    if spark is None:
        return None
    try:
        return spark.sparkContext._jvm
    except Exception:
        return None


def spark_application_id(spark: SparkSession | None) -> str | None:
    """The Spark application id, also under Spark Connect; None without a session."""
    if spark is None:
        return None
    try:
        return spark.sparkContext.applicationId
    except Exception:
        try:
            return spark.conf.get("spark.app.id", None)
        except Exception:
            return None


def quiet_spark_logger(spark: SparkSession | None, logger: str) -> None:
    """Show only errors of the JVM's log4j ``logger`` (a Spark class whose warnings are known
    noise for a job); nothing where there is no JVM."""
    jvm = driver_jvm(spark)
    if jvm is not None:
        log4j = jvm.org.apache.logging.log4j
        log4j.core.config.Configurator.setLevel(logger, log4j.Level.ERROR)


def log4j_level(level: int) -> str:
    """The log4j level name for a Python level."""
    return next(name for threshold, name in LOG4J_LEVELS if level >= threshold)


def route_driver_log(log4j: Any, beside_console: bool) -> None:
    """Send the log4j logger ``datalake`` to the root logger's appenders, except, when
    ``beside_console`` (our console target prints every event already), those that print to
    the terminal. Appenders attached to ``datalake`` by others stay. Repeatable."""
    context = log4j.LogManager.getContext(False)
    configuration = context.getConfiguration()
    logger_config = configuration.getLoggerConfig(LOGGER_NAME)
    root_appenders = dict(configuration.getRootLogger().getAppenders())
    for name in list(logger_config.getAppenders()):
        if name in root_appenders:  # attached by an earlier call
            logger_config.removeAppender(name)
    if beside_console:
        for appender in root_appenders.values():
            if appender.getClass().getName() != LOG4J_CONSOLE_APPENDER:
                logger_config.addAppender(appender, None, None)
    logger_config.setAdditive(not beside_console)
    context.updateLoggers()


class Log4jHandler(logging.Handler):
    """Writes records to the driver's log4j logger ``datalake``, through the JVM gateway;
    ``beside_console``: not through log4j's console appenders (see :func:`route_driver_log`)."""

    def __init__(self, jvm: Any, level: int, beside_console: bool) -> None:
        super().__init__()
        log4j = jvm.org.apache.logging.log4j
        # Our level rules our lines, whatever level Spark's root logger is at.
        log4j.core.config.Configurator.setLevel(
            LOGGER_NAME, log4j.Level.toLevel(log4j_level(level))
        )
        route_driver_log(log4j, beside_console)
        self._log4j_logger: Any | None = log4j.LogManager.getLogger(LOGGER_NAME)
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        if self._log4j_logger is None:
            return
        try:
            line = self.format(record)
            getattr(self._log4j_logger, log4j_level(record.levelno).lower())(line)
        except Exception as error:
            self._log4j_logger = None
            report_problem(f"Spark driver log target stopped: {type(error).__name__}: {error}")


class ConsoleHandler(logging.StreamHandler):
    """Lines on stderr that clear a progress status line first (dependencies/progress.py)."""

    def emit(self, record: logging.LogRecord) -> None:
        with whole_lines(self.stream):
            super().emit(record)


def _console_handler(console_config: Mapping[str, Any]) -> logging.Handler:
    handler = ConsoleHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if console_config["format"] == "json" else TextFormatter())
    return handler


def _file_handler(file_config: Mapping[str, Any]) -> logging.Handler:
    path = Path(file_config["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path,
        maxBytes=file_config["max_bytes"],
        backupCount=file_config["backup_count"],
        encoding="utf-8",
    )
    handler.setFormatter(JsonFormatter())
    return handler


def _cloudwatch_handler(
    cloudwatch_config: Mapping[str, Any], aws_config: Mapping[str, Any], context: RunContextFilter
) -> logging.Handler:
    def stream_name() -> str:
        """The configured stream, else one stream per run: ``job/run date/run id``."""
        run = context.context
        return cloudwatch_config["log_stream"] or "/".join(
            str(run[key] or f"unknown-{key.replace('_', '-')}")
            for key in ("job", "run_date", "run_id")
        )

    handler = CloudWatchLogsHandler(
        client=logs_client(aws_config, cloudwatch_config["request_timeout_seconds"]),
        log_group=cloudwatch_config["log_group"],
        stream_name=stream_name,
        create_missing=cloudwatch_config["create_missing"],
        flush_interval_seconds=cloudwatch_config["flush_interval_seconds"],
        max_retries=cloudwatch_config["max_retries"],
        retry_base_seconds=cloudwatch_config["retry_base_seconds"],
        close_timeout_seconds=cloudwatch_config["close_timeout_seconds"],
        max_queued_events=cloudwatch_config["max_queued_events"],
        report=report_problem,
    )
    handler.setFormatter(JsonFormatter())
    return handler


def build_logger(
    logging_config: Mapping[str, Any],
    aws_config: Mapping[str, Any],
    job: str,
    spark: SparkSession | None = None,
) -> logging.Logger:
    """The job logger, writing to the targets enabled in the ``logging`` config section.

    Handlers of an earlier call are flushed and closed first, so building twice in one
    process (tests, notebooks) leaves one set of targets."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging_config["level"])
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    context = RunContextFilter(job)
    context.context["spark_app_id"] = spark_application_id(spark)
    jvm = driver_jvm(spark) if logging_config["spark"]["enabled"] else None
    targets = {
        "console": lambda: _console_handler(logging_config["console"]),
        "file": lambda: _file_handler(logging_config["file"]),
        "spark": lambda: Log4jHandler(jvm, logger.level, logging_config["console"]["enabled"]),
        "cloudwatch": lambda: _cloudwatch_handler(
            logging_config["cloudwatch"], aws_config, context
        ),
    }
    for name, make_handler in targets.items():
        if not logging_config[name]["enabled"] or (name == "spark" and jvm is None):
            continue
        try:
            handler = make_handler()
        except Exception as error:
            report_problem(f"{name} target left out: {type(error).__name__}: {error}")
            continue
        handler.addFilter(context)
        logger.addHandler(handler)
    if logging_config["spark"]["enabled"] and jvm is None:
        logger.info("log target left out: spark (no JVM reachable: Spark Connect or no session)")
    return logger


def bind_run_context(logger: logging.Logger, **values: str | None) -> None:
    """Set run context values (``run_id``, ``run_date``, ...) on every later record."""
    unknown = set(values) - set(CONTEXT_KEYS)
    if unknown:
        raise ValueError(f"unknown run context keys: {', '.join(sorted(unknown))}")
    for handler in logger.handlers:
        for log_filter in handler.filters:
            if isinstance(log_filter, RunContextFilter):
                log_filter.context.update(values)


def flush_logger(logger: logging.Logger) -> None:
    """Deliver everything logged so far to every target (bounded in time for CloudWatch)."""
    for handler in logger.handlers:
        handler.flush()
