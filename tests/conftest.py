"""Shared fixtures: one local SparkSession for the whole suite, and job configs in tmp dirs."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

REPO = Path(__file__).resolve().parent.parent
TEST_DATA = REPO / "tests" / "test_data"
RUN_DATE = "2026-11-15"

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """The suite's one local session: UTC, two shuffle partitions, no UI."""
    session = (
        SparkSession.builder.master("local[2]")
        .appName("datalake-tests")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    yield session
    session.stop()


def write_job_config(
    directory: Path, overrides: dict[str, Any] | None = None, name: str = "job_config.json"
) -> Path:
    """Write a job config into ``directory`` (input: tests/test_data, output:
    ``directory/output``) with ``overrides`` merged one level deep; return its path."""
    config: dict[str, Any] = {
        "input": {"path": str(TEST_DATA), "format": "csv"},
        "output": {"path": str(directory / "output")},
        "spark": {"spark.sql.shuffle.partitions": "2"},
    }
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = directory / name
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a job config (input: tests/test_data, output: a tmp dir) with ``overrides``
    merged one level deep; return its path."""

    def write(overrides: dict[str, Any] | None = None, name: str = "job_config.json") -> Path:
        return write_job_config(tmp_path, overrides, name)

    return write
