"""The job's logger: UTC timestamps, one consistent line shape."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

LOGGER_NAME = "datalake"


class UtcFormatter(logging.Formatter):
    """Formats records with an ISO-8601 UTC timestamp."""

    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def build_logger(logging_config: Mapping[str, Any]) -> logging.Logger:
    """Return the job logger configured from the ``logging`` config section."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging_config["level"])
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.setFormatter(
        UtcFormatter("%(asctime)s %(levelname)s %(name)s %(module)s:%(funcName)s:%(lineno)d %(message)s")
    )
    logger.addHandler(handler)
    return logger
