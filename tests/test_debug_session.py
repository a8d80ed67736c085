"""DEBUG=1 sessions: start_spark builds a local session from the config's ``spark`` section
(master, files, jar packages, any Spark setting), where under spark-submit the cluster's
settings rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
import zipfile
from pathlib import Path

from conftest import REPO

from dependencies import jars
from dependencies.spark import (
    DRIVER_CLASS_PATH,
    REQUIRED_SPARK_CONFIG,
    session_builder,
    uses_local_settings,
)

PROBE_PACKAGE = "org.example.datalake:probe:1.0"
PROBE_SCRIPT = """
import json, sys
from pyspark import SparkFiles
from pyspark.errors.utils import is_debugging_enabled
from dependencies.spark import start_spark

spark, log, loaded = start_spark(app_name="debug-probe", config_path=sys.argv[1])
context = spark.sparkContext
print(json.dumps({
    "master": context.master,
    "probe": spark.conf.get("spark.datalake.probe"),
    "packages": spark.conf.get("spark.jars.packages"),
    "jars": context._jsc.sc().listJars().mkString(",").split(","),
    "file": open(SparkFiles.get("probe.txt")).read(),
    "shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions"),
    "captures_call_sites": is_debugging_enabled(),
}))
spark.stop()
"""


def with_file(name: str) -> types.ModuleType:
    """A stand-in for ``__main__`` of a script run from a file."""
    module = types.ModuleType("__main__")
    module.__file__ = name
    return module


def test_debug_selects_local_settings_even_under_spark_submit() -> None:
    # GIVEN a script started by spark-submit (the JVM hands Python its gateway port)
    submitted = {"PYSPARK_GATEWAY_PORT": "40000"}
    script = with_file("jobs/datalake_job.py")
    # THEN the cluster's settings rule, unless DEBUG is set; without spark-submit (plain
    # python) or in a REPL, local settings apply
    assert not uses_local_settings(submitted, script)
    assert not uses_local_settings({**submitted, "DEBUG": "0"}, script)
    assert uses_local_settings({**submitted, "DEBUG": "1"}, script)
    assert uses_local_settings({}, script)
    assert uses_local_settings(submitted, types.ModuleType("__main__"))


def test_the_builder_applies_the_settings_only_for_local_sessions() -> None:
    # GIVEN a spark section with every kind of setting
    settings = {
        "spark.master": "local[3]",
        "spark.jars.packages": "org.example:a:1,org.example:b:2",
        "spark.files": "/tmp/a.json,/tmp/b.txt",
        "spark.executor.memory": "3g",
    }
    # WHEN builders are made for a local session and for spark-submit
    local = session_builder("probe", settings, local=True)._options
    submitted = session_builder("probe", settings, local=False)._options

    # THEN the local one carries them all, the submitted one only the name and what must hold
    class_path = {DRIVER_CLASS_PATH: jars.class_path()}
    assert local == {"spark.app.name": "probe", **settings, **class_path, **REQUIRED_SPARK_CONFIG}
    assert submitted == {"spark.app.name": "probe", **REQUIRED_SPARK_CONFIG}


def local_maven_repository(root: Path) -> Path:
    """A file-system Maven repository holding the probe jar; an Ivy settings file using only it."""
    group, artifact, version = PROBE_PACKAGE.split(":")
    directory = root / "repository" / Path(*group.split(".")) / artifact / version
    directory.mkdir(parents=True)
    with zipfile.ZipFile(directory / f"{artifact}-{version}.jar", "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        jar.writestr("datalake-probe.txt", "probe\n")
    (directory / f"{artifact}-{version}.pom").write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        f"<groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version>"
        "<packaging>jar</packaging></project>"
    )
    settings = root / "ivysettings.xml"
    settings.write_text(
        '<ivysettings><settings defaultResolver="local"/><resolvers>'
        f'<ibiblio name="local" m2compatible="true" root="{(root / "repository").as_uri()}/"/>'
        "</resolvers></ivysettings>"
    )
    return settings


def test_start_spark_under_debug_applies_its_arguments(
    tmp_path: Path, write_config: object
) -> None:
    # GIVEN a file to ship, a jar package in a local Maven repository (no network), a config
    # naming them, and a script calling start_spark with it, run as `DEBUG=1 python script.py`
    shipped = tmp_path / "probe.txt"
    shipped.write_text("shipped with files")
    settings = local_maven_repository(tmp_path)
    config = write_config(
        {
            "spark": {  # type: ignore[operator]
                "spark.master": "local[1]",
                "spark.jars.packages": PROBE_PACKAGE,
                "spark.files": str(shipped),
                "spark.jars.ivySettings": str(settings),
                "spark.jars.ivy": str(tmp_path / "ivy"),
                "spark.datalake.probe": "from-config",
                "spark.ui.enabled": "false",
                "spark.sql.shuffle.partitions": "3",
            }
        }
    )
    script = tmp_path / "probe.py"
    script.write_text(PROBE_SCRIPT)
    environment = {**os.environ, "DEBUG": "1", "PYTHONPATH": str(REPO)}

    # WHEN it runs in its own JVM
    result = subprocess.run(
        [sys.executable, str(script), str(config)],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    # THEN the session has the config's master, its Spark settings, the resolved jar package,
    # the shipped file and its Spark SQL settings
    assert result.returncode == 0, result.stderr[-3000:]
    session = json.loads(result.stdout.strip().splitlines()[-1])
    assert session["master"] == "local[1]"
    assert session["probe"] == "from-config"
    assert session["packages"] == PROBE_PACKAGE
    assert any(jar.endswith("org.example.datalake_probe-1.0.jar") for jar in session["jars"]), (
        session["jars"]
    )
    assert session["file"] == "shipped with files"
    assert session["shuffle_partitions"] == "3"
    # AND its column functions record no Python call site
    assert session["captures_call_sites"] is False
