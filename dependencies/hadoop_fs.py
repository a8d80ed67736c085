"""File system calls on any Hadoop-supported path, through the JVM's Hadoop client (and
plain Python on the local file system, where that is faster)."""

from __future__ import annotations

import os
from typing import Any

from pyspark.sql import SparkSession


class HadoopFs:
    """The few file system calls the job needs, on any Hadoop-supported path (local, HDFS,
    s3a ...)."""

    def __init__(self, spark: SparkSession, path: str) -> None:
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()
        self._fs = self._jvm.org.apache.hadoop.fs.Path(path).getFileSystem(self._conf)
        # On the local file system, reading and listing many small files is done by Python
        # (one call to the JVM per file and property is slow); elsewhere through Hadoop.
        self._local = str(self._fs.getScheme()) == "file"

    @staticmethod
    def _os_path(path: str) -> str:
        return path.removeprefix("file:")

    def _path(self, path: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""
        return bool(self._fs.exists(self._path(path)))

    def children(self, path: str) -> list[str]:
        """The names of the entries of directory ``path`` (none if it does not exist)."""
        if not self.exists(path):
            return []
        return sorted(
            str(status.getPath().getName()) for status in self._fs.listStatus(self._path(path))
        )

    def mkdirs(self, path: str) -> None:
        """Create directory ``path`` and its parents."""
        self._fs.mkdirs(self._path(path))

    def rename(self, source: str, target: str) -> None:
        """Move ``source`` to ``target``, creating the target's parent; fail if it cannot."""
        self._fs.mkdirs(self._path(target).getParent())
        if not self._fs.rename(self._path(source), self._path(target)):
            raise OSError(f"cannot rename {source} to {target}")

    def delete(self, path: str) -> None:
        """Delete ``path`` and everything below it."""
        self._fs.delete(self._path(path), True)

    def read_text(self, path: str) -> str | None:
        """The text (UTF-8) of file ``path``, or None if there is none."""
        if self._local:
            try:
                with open(self._os_path(path), encoding="utf-8") as file:
                    return file.read()
            except FileNotFoundError:
                return None
        if not self.exists(path):
            return None
        stream = self._fs.open(self._path(path))
        try:
            return "\n".join(iter(self._utf8_reader(stream).readLine, None))
        finally:
            stream.close()

    def _utf8_reader(self, stream: Any) -> Any:
        """A Java reader of ``stream``'s lines, as UTF-8 text."""
        return self._jvm.java.io.BufferedReader(
            self._jvm.java.io.InputStreamReader(stream, "UTF-8")
        )

    def first_line(self, path: str) -> str | None:
        """The first line (UTF-8) of file ``path``, decompressed by its name's codec (as Spark
        reads it: ``.gz``, ``.bz2`` ...); None for an empty file."""
        hadoop_path = self._path(path)
        stream = self._fs.open(hadoop_path)
        try:
            codec = self._jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(
                self._conf
            ).getCodec(hadoop_path)
            if codec is not None:
                stream = codec.createInputStream(stream)
            line = self._utf8_reader(stream).readLine()
            return None if line is None else str(line)
        finally:
            stream.close()

    def files(self, path: str) -> list[tuple[str, int, int]]:
        """Every data file below directory ``path`` (names starting with ``_`` or ``.`` are
        not data): its path relative to ``path``, size and modification time (ms)."""
        if self._local:
            return self._local_files(self._os_path(path))
        if not self.exists(path):
            return []
        root = str(self._fs.makeQualified(self._path(path)).toUri().getPath()).rstrip("/")
        found, listing = [], self._fs.listFiles(self._path(path), True)
        while listing.hasNext():
            status = listing.next()
            name = str(status.getPath().toUri().getPath())
            relative = name[len(root) + 1 :] if name.startswith(root + "/") else name
            if not any(part.startswith(("_", ".")) for part in relative.split("/")):
                found.append((relative, int(status.getLen()), int(status.getModificationTime())))
        return sorted(found)

    @staticmethod
    def _local_files(root: str) -> list[tuple[str, int, int]]:
        found = []
        for directory, subdirectories, names in os.walk(root):
            subdirectories[:] = [d for d in subdirectories if not d.startswith(("_", "."))]
            for name in names:
                if not name.startswith(("_", ".")):
                    status = os.stat(os.path.join(directory, name))
                    relative = os.path.relpath(os.path.join(directory, name), root)
                    found.append((relative, status.st_size, status.st_mtime_ns // 1_000_000))
        return sorted(found)

    def write_text(self, path: str, text: str) -> None:
        """Write ``text`` (UTF-8) to a new file at ``path``."""
        stream = self._fs.create(self._path(path), True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()
