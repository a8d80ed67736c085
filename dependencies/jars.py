"""The JVM packages the job needs beside Spark's own, fetched once into the local Maven cache.

Delta Lake (the published tables) is needed by every run; Hadoop's S3A file system and the AWS
SDK it uses only by runs reading or writing ``s3a://`` paths (the SDK bundle is 650 MB).
``make install`` runs ``python -m dependencies.jars``, which fetches what is missing with
Maven (``mvn dependency:get``) into ``~/.m2/repository`` (``DATALAKE_MAVEN_REPOSITORY``
moves it). A local session puts them on the driver's class path from there; spark-submit
ships them to the executors with ``--jars``.

The versions go with the pinned pyspark (Pipfile): Delta Lake 4.4.0 is built for Spark 4.2.0,
whose Hadoop 3.5.0 is matched by hadoop-aws 3.5.0 and the AWS SDK v2 bundle 2.35.4.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

DELTA_PACKAGES = ("io.delta:delta-spark_2.13:4.4.0", "io.delta:delta-storage:4.4.0")
S3A_PACKAGES = (
    "org.apache.hadoop:hadoop-aws:3.5.0",
    "software.amazon.awssdk:bundle:2.35.4",
    "software.amazon.s3.analyticsaccelerator:analyticsaccelerator-s3:1.3.1",
)
# The settings that make a session read and write Delta tables (fixed when it starts).
DELTA_SESSION_CONFIG = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
# The path schemes served by the S3A packages.
S3A_SCHEMES = ("s3a://",)


class MissingJars(RuntimeError):
    """A package the session needs is not in the local Maven cache."""


def repository() -> Path:
    """The local Maven repository the jars are fetched into and read from."""
    default = Path.home() / ".m2" / "repository"
    return Path(os.environ.get("DATALAKE_MAVEN_REPOSITORY", default))


def jar_path(coordinate: str) -> Path:
    """Where the jar of ``group:artifact:version`` lies in the local Maven repository."""
    group, artifact, version = coordinate.split(":")
    return repository().joinpath(*group.split("."), artifact, version, f"{artifact}-{version}.jar")


def packages(paths: Iterable[str]) -> tuple[str, ...]:
    """The packages a run over ``paths`` (its input and output) needs: Delta always, S3A when
    one of them is on ``s3a://``."""
    on_s3a = any(str(path).startswith(S3A_SCHEMES) for path in paths)
    return DELTA_PACKAGES + (S3A_PACKAGES if on_s3a else ())


def jar_paths(coordinates: Sequence[str]) -> list[Path]:
    """The jars of ``coordinates``; :class:`MissingJars` names the first one not fetched."""
    found = [jar_path(coordinate) for coordinate in coordinates]
    for coordinate, path in zip(coordinates, found, strict=True):
        if not path.is_file():
            raise MissingJars(f"{coordinate} is not in {repository()}: run `make install`")
    return found


def class_path() -> str:
    """Every package's jar, as one class path (a local session: the driver runs the tasks)."""
    return os.pathsep.join(str(path) for path in jar_paths(DELTA_PACKAGES + S3A_PACKAGES))


def fetch(coordinates: Iterable[str]) -> list[str]:
    """Fetch every jar of ``coordinates`` not yet in the local repository; return those
    fetched."""
    fetched = []
    for coordinate in coordinates:
        if jar_path(coordinate).is_file():
            continue
        subprocess.run(
            [
                "mvn",
                "--batch-mode",
                "--quiet",
                f"-Dmaven.repo.local={repository()}",
                "dependency:get",
                "-Dtransitive=false",
                f"-Dartifact={coordinate}",
            ],
            check=True,
        )
        fetched.append(coordinate)
    return fetched


def main(argv: list[str] | None = None) -> int:
    """Fetch what is missing (``make install``), or print the jars for ``spark-submit
    --jars``: Delta Lake's, and with ``--s3a`` S3A's too."""
    parser = argparse.ArgumentParser(description="The Spark packages the job needs.")
    parser.add_argument("--list", action="store_true", help="print the jars, comma-separated")
    parser.add_argument("--s3a", action="store_true", help="with --list: S3A's jars too")
    args = parser.parse_args(argv)
    if args.list:
        chosen = DELTA_PACKAGES + (S3A_PACKAGES if args.s3a else ())
        try:
            print(",".join(str(path) for path in jar_paths(chosen)))
        except MissingJars as error:
            print(f"jars: {error}", file=sys.stderr)
            return 1
        return 0
    try:
        done = fetch(DELTA_PACKAGES + S3A_PACKAGES)
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"make install: cannot fetch the Spark packages with Maven: {error}", file=sys.stderr)
        return 1
    print(f"jars: {len(done)} fetched, all in {repository()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
