"""Input readiness: with ``input.require_success_marker``, a run starts only when every input
table carries its completion marker (``<table>/_SUCCESS``, as Spark and Hadoop writers leave).

``s3://`` inputs are checked through boto3; every other path through Hadoop's file system API
(local files, HDFS, and s3a:// where the cluster has hadoop-aws).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pyspark.sql import SparkSession

from dependencies import s3
from dependencies.hadoop_fs import HadoopFs

SUCCESS_MARKER = "_SUCCESS"


class InputNotReady(RuntimeError):
    """An input table has no completion marker yet: the run must not start."""


def marker_path(input_path: str, table: str) -> str:
    """Where ``table``'s completion marker lives under ``input_path``."""
    return f"{input_path.rstrip('/')}/{table}/{SUCCESS_MARKER}"


def missing_markers(
    spark: SparkSession, input_path: str, tables: Iterable[str], aws_config: Mapping[str, Any]
) -> list[str]:
    """The marker paths of ``tables`` that do not exist, in table order."""
    markers = [marker_path(input_path, table) for table in tables]
    if s3.is_s3_url(input_path):
        s3_client = s3.client(aws_config)
        return [marker for marker in markers if not s3.object_exists(s3_client, marker)]
    fs = HadoopFs(spark, input_path)
    return [marker for marker in markers if not fs.exists(marker)]


def require_ready(
    spark: SparkSession,
    input_config: Mapping[str, Any],
    tables: Iterable[str],
    aws_config: Mapping[str, Any],
) -> None:
    """Raise :class:`InputNotReady` naming every missing marker, when markers are required."""
    if not input_config["require_success_marker"]:
        return
    missing = missing_markers(spark, input_config["path"], tables, aws_config)
    if missing:
        raise InputNotReady(f"no {SUCCESS_MARKER} marker yet: {', '.join(missing)}")
