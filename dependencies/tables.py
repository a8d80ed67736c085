"""The input tables of the data contract: their columns, and how to read them raw.

Tables are read as they are on disk, never with schema inference: CSV columns come in as
strings (by header name, extra columns kept for the reject record) and are typed by
validation, so that a bad value becomes a reject instead of a silent null. A CSV line with
the wrong number of fields (or an unclosed quote) keeps its text in ``_corrupt_record``.
Problems with a whole table (missing directory or column, a file that cannot be read) raise
:class:`InputError` naming the table.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from dependencies.hadoop_fs import HadoopFs

CORRUPT_RECORD = "_corrupt_record"
MEASURED_DATE = "measured_date"
BYTE_ORDER_MARK = "\ufeff"
# What a failed Spark read raises: an analysis error, or a Java error from a task or a footer.
SPARK_ERRORS = (PySparkException, Py4JJavaError)


@dataclass(frozen=True)
class Column:
    """A contract column: its name, Spark SQL type and whether it is required."""

    name: str
    type: str
    required: bool


# REQUIRED marks a column that must have a value; the others may be empty.
REQUIRED = "!"


def _columns(ddl_text: str) -> tuple[Column, ...]:
    """Contract columns from ``"name type[!], ..."`` (``!``: required)."""
    parsed = (part.split() for part in ddl_text.split(","))
    return tuple(
        Column(name, kind.rstrip(REQUIRED), kind.endswith(REQUIRED)) for name, kind in parsed
    )


TABLES: dict[str, tuple[Column, ...]] = {
    "device": _columns(
        "device_id string!, serial_number string, device_type string!, manufacturer string, "
        "model string"
    ),
    "measuring_component": _columns(
        "measuring_component_id string!, device_id string!, component_type string!, "
        "reading_type string!, interval_minutes int!, register_max double"
    ),
    "install_event": _columns(
        "install_event_id string!, device_id string!, service_point_id string!, "
        "installed_at timestamp!, removed_at timestamp, customer_class string!, "
        "has_generation boolean!"
    ),
    "measurements": _columns(
        "measuring_component_id string!, measured_at timestamp!, value double!"
    ),
}
TABLE_NAMES = tuple(TABLES)


def ddl(table: str) -> str:
    """The typed schema of ``table`` as a Spark DDL string (for building frames by hand)."""
    return ", ".join(f"{column.name} {column.type}" for column in TABLES[table])


class InputError(RuntimeError):
    """The input cannot be used at all: the run stops without publishing anything."""


def describe_error(error: BaseException) -> str:
    """A one-line description of a (possibly Java) error: its message and, when it differs,
    the message of its root cause (where Spark keeps the detail, e.g. a bad file footer)."""
    java = getattr(error, "java_exception", None)
    if java is None:
        return _first_line(str(error)) or type(error).__name__
    message, root = java.getMessage(), java
    while root.getCause() is not None:
        root = root.getCause()
    parts = [_first_line(message), _first_line(root.getMessage())]
    return ": ".join(dict.fromkeys(p for p in parts if p)) or java.getClass().getName()


def is_read_failure(error: BaseException) -> bool:
    """Whether Spark failed reading an input file (corrupt, unreadable, or a CSV header that
    does not match the table's first file)."""
    return "FAILED_READ_FILE" in describe_error(error)


@contextmanager
def read_failures_named(table: str) -> Iterator[None]:
    """Inside the block, Spark failing to read an input file becomes an :class:`InputError`
    naming ``table``; any other error passes through."""
    try:
        yield
    except SPARK_ERRORS as error:
        if not is_read_failure(error):
            raise
        raise InputError(f"table {table}: cannot read: {describe_error(error)}") from error


def count_read(frame: DataFrame, table: str) -> int:
    """Rows of ``table`` as read, before validation; an unreadable file is an
    :class:`InputError`."""
    try:
        return frame.count()
    except SPARK_ERRORS as error:
        raise InputError(f"table {table}: cannot read: {describe_error(error)}") from error


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0].strip()


def csv_header(fs: HadoopFs, path: str) -> list[str] | None:
    """The column names in the header of the first CSV file below ``path`` (in path order)
    that has a first line, read without a Spark job; None if no file has one. A blank name
    is ``_c<position>``, as Spark names it."""
    for relative, size, _ in fs.files(path):
        line = fs.first_line(f"{path}/{relative}") if size else None
        if line:
            names = next(csv.reader([line.removeprefix(BYTE_ORDER_MARK)]))
            return [name or f"_c{position}" for position, name in enumerate(names)]
    return None


def read_raw_table(spark: SparkSession, base_path: str, table: str, fmt: str) -> DataFrame:
    """Read one table directory as stored, checking that every required column is there.

    CSV: every column a string (named by the header of the first file; every other file's
    header must match it), plus ``_corrupt_record`` for lines that do not parse. Parquet: the
    file schema. A missing directory, an unreadable table or a missing required column
    raises :class:`InputError` naming the table.
    """
    path = f"{base_path.rstrip('/')}/{table}"
    fs = HadoopFs(spark, path)
    if not fs.exists(path):
        raise InputError(f"table {table}: directory not found: {path}")
    try:
        if fmt == "csv":
            header = csv_header(fs, path)
            if header is None:
                raise InputError(f"table {table}: no CSV file with a header line in {path}")
            data_columns = [c for c in header if c != MEASURED_DATE]
            schema = StructType(
                [StructField(name, StringType()) for name in data_columns]
                + [StructField(CORRUPT_RECORD, StringType())]
            )
            frame = (
                spark.read.schema(schema)
                .option("header", True)
                .option("enforceSchema", False)  # a file whose header differs fails the read
                .option("mode", "PERMISSIVE")
                .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
                .csv(path)
            )
        else:
            frame = spark.read.parquet(path)
    except SPARK_ERRORS as error:
        raise InputError(f"table {table}: cannot read {path}: {describe_error(error)}") from error
    missing = [c.name for c in TABLES[table] if c.required and c.name not in frame.columns]
    if missing:
        raise InputError(f"table {table}: missing required column {', '.join(missing)}")
    if CORRUPT_RECORD not in frame.columns:
        frame = frame.withColumn(CORRUPT_RECORD, F.lit(None).cast("string"))
    return frame
